"""`python -m server ARGS` from a checkout is `files-api ARGS`; the package is `files_api`.

Not part of the distribution: installed, `server` is too generic a top-level name.
"""

from files_api.__main__ import main

main()
