"""``python server.py --model_path ... --port 8000``: the server guide's invocation, an alias of
``fasttts serve``."""

import sys

from api.main import serve

if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
