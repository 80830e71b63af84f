#!/usr/bin/env node
// A FileService client on stubs generated from ../../protos (gen/, by protoc-gen-es) over the
// gRPC protocol on HTTP/2 (@connectrpc/connect-node). It runs one scenario against a server and
// prints, as JSON on stdout, what it observed; tests/test_node_client.py checks the values.
//
//   node files-client.mjs HOST:PORT [FOLDER_ID]
//
// Files are reported in the proto3 JSON mapping as this library writes it (lowerCamelCase,
// int64 as strings, timestamps in RFC 3339 with as many fractional digits as they carry).
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { ExpirationConfig_ExpirationPolicy as Policy } from "./gen/yandex/cloud/ai/common/common_pb.js";
import { FileSchema } from "./gen/yandex/cloud/ai/files/v1/file_pb.js";
import { FileService } from "./gen/yandex/cloud/ai/files/v1/file_service_pb.js";

const [target, folderArg] = process.argv.slice(2);
if (!target || !/^[^/]+:\d+$/.test(target)) {
  console.error("usage: node files-client.mjs HOST:PORT [FOLDER_ID]");
  process.exit(2);
}
// A fresh folder by default, so that the List walk sees only this run's files.
const folderId = folderArg ?? `node-client-${Date.now().toString(36)}`;

// Held here so that the HTTP/2 connection can be closed at the end and Node exits at once.
const baseUrl = `http://${target}`;
const sessionManager = new Http2SessionManager(baseUrl);
const files = createClient(
  FileService,
  createGrpcTransport({ baseUrl, sessionManager, defaultTimeoutMs: 15_000 }),
);

const asJson = (file) => toJson(FileSchema, file, { alwaysEmitImplicit: true });

async function failure(call) {
  try {
    await call();
  } catch (e) {
    const error = ConnectError.from(e);
    return { code: Code[error.code], message: error.rawMessage };
  }
  return null;
}

async function main() {
  const created = await files.create({
    folderId,
    name: "notes.txt",
    description: "first description",
    content: new TextEncoder().encode("hello from node\n"),
    labels: { env: "dev", "team.name": "core", keep: "yes", gone: "bye" },
    expirationConfig: { expirationPolicy: Policy.STATIC, ttlDays: 3n },
  });

  // Every field is set in the request, but only what the mask names may change: `name`, the
  // `env` entry, the `team.name` entry (a key with a dot goes in backticks, AIP-161) and the
  // `gone` entry, which the request leaves out and so is removed.
  const updateMask = ["name", "labels.env", "labels.`team.name`", "labels.gone"];
  const updated = await files.update({
    fileId: created.id,
    updateMask: { paths: updateMask },
    name: "notes-v2.txt",
    description: "not in the mask",
    labels: { env: "prod", "team.name": "platform", extra: "not in the mask" },
    expirationConfig: { expirationPolicy: Policy.SINCE_LAST_ACTIVE, ttlDays: 30n },
  });
  const got = await files.get({ fileId: created.id });

  // Newer files in the same folder, then the whole folder two at a time.
  const extraIds = [];
  for (let i = 0; i < 4; i++) {
    const extra = await files.create({
      folderId,
      name: `extra-${i}.txt`,
      content: new TextEncoder().encode(`extra ${i}\n`),
    });
    extraIds.push(extra.id);
  }
  const pages = [];
  let pageToken = "";
  do {
    const page = await files.list({ folderId, pageSize: 2n, pageToken });
    pages.push({ files: page.files.map(asJson), nextPageToken: page.nextPageToken });
    pageToken = page.nextPageToken;
  } while (pageToken && pages.length < 10);

  const report = {
    folderId,
    updateMask,
    created: asJson(created),
    updated: asJson(updated),
    got: asJson(got),
    extraIds,
    pages,
    getMissing: await failure(() => files.get({ fileId: "no-such-file-id-00000" })),
    badMask: await failure(() =>
      files.update({ fileId: created.id, updateMask: { paths: ["no_such_field"] } }),
    ),
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

try {
  await main();
} finally {
  sessionManager.abort();
}
