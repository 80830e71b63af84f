"""`python -m server`, as the README used to say, from a checkout: the package is `files_api`."""
