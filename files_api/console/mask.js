// What Save sends: one Update whose mask names exactly the fields the person changed, so a
// save never writes over a field someone else changed meanwhile, and the audit trail names
// only what this person did. Pure functions of two plain objects.

/** A mask path segment as AIP-161 writes it (files_api/masks.py): bare when it is only
 * [A-Za-z0-9_], else in backticks with a backtick inside doubled. */
export function quoteSegment(segment) {
  return /^[A-Za-z0-9_]+$/.test(segment) ? segment : "`" + segment.replaceAll("`", "``") + "`";
}

/**
 * The Update for going from `loaded` to `edited` (both {name, description, labels: {key:
 * value}, policy, ttlDays}): `paths` in snake_case as the audit log and errors name them,
 * `body` the PATCH's JSON (its updateMask in lowerCamel, as the proto3 JSON mapping writes a
 * FieldMask). No paths means nothing changed.
 */
export function planUpdate(loaded, edited) {
  const paths = [];
  const mask = [];
  const body = {};
  for (const field of ["name", "description"]) {
    if (edited[field] !== loaded[field]) {
      paths.push(field);
      mask.push(field);
      body[field] = edited[field];
    }
  }
  const keys = [...new Set([...Object.keys(loaded.labels), ...Object.keys(edited.labels)])].sort();
  const labels = Object.create(null); // a key such as `__proto__` stays a key
  for (const key of keys) {
    const before = Object.hasOwn(loaded.labels, key) ? loaded.labels[key] : undefined;
    const after = Object.hasOwn(edited.labels, key) ? edited.labels[key] : undefined;
    if (before === after) continue;
    paths.push(`labels.${quoteSegment(key)}`);
    mask.push(`labels.${quoteSegment(key)}`);
    // A key named in the mask but absent from the body is removed (AIP-134).
    if (Object.hasOwn(edited.labels, key)) labels[key] = edited.labels[key];
  }
  if (Object.keys(labels).length) body.labels = labels;
  const expiration = {};
  if (edited.policy !== loaded.policy) {
    paths.push("expiration_config.expiration_policy");
    mask.push("expirationConfig.expirationPolicy");
    expiration.expirationPolicy = edited.policy;
  }
  if (edited.ttlDays !== loaded.ttlDays) {
    paths.push("expiration_config.ttl_days");
    mask.push("expirationConfig.ttlDays");
    expiration.ttlDays = String(edited.ttlDays); // int64: a string in proto3 JSON
  }
  if (Object.keys(expiration).length) body.expirationConfig = expiration;
  body.updateMask = mask.join(",");
  return { paths, body };
}
