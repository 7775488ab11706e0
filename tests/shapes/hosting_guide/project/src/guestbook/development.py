import os

DEBUG = True
SECRET_KEY = "dev-not-secret"
DBDRIVER = os.environ.get("DBDRIVER", "postgresql+psycopg")
DBUSER = os.environ.get("DBUSER", "postgres")
DBPASS = os.environ.get("DBPASS", "")
DBHOST = os.environ.get("DBHOST", "127.0.0.1")
DBNAME = os.environ["DBNAME"]
SQLALCHEMY_DATABASE_URI = f"{DBDRIVER}://{DBUSER}:{DBPASS}@{DBHOST}/{DBNAME}"
