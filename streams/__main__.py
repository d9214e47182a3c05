"""`python -m streams worker`: run a faust worker of the govbus app.

Workers run without faust's web server (several share a machine; metrics are served on
GOVBUS_METRICS_PORT instead) unless `--with-web` is given.
"""

import sys

from streams.app import app

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker" and not any("-web" in a for a in sys.argv):
        sys.argv.append("--without-web")
    app.main()
