"""`python -m streams worker`: run a faust worker of the govbus app."""

from streams.app import app

if __name__ == "__main__":
    app.main()
