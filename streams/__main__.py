"""`python -m streams worker`: a faust worker of the govbus app with every agent and the delivery stream;
workers run without faust's web server (metrics are served on GOVBUS_METRICS_PORT) unless `--with-web` is given."""

import sys

# registering the agents and the delivery stream is importing them
from streams import case_agent, catalog_agent, deliveries, sharing_agent  # noqa: F401
from streams.app import app

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker" and not any("-web" in a for a in sys.argv):
        sys.argv.append("--without-web")
    app.main()
