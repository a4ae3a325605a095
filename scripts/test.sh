#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, make sure Redis/PostgreSQL run, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]"
bash scripts/services.sh
python3 -m pytest -q -p no:cacheprovider "$@"
