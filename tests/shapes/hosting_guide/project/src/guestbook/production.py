import os

DEBUG = False
SECRET_KEY = os.environ["SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = (
    f"postgresql+psycopg://{os.environ['DBUSER']}:{os.environ['DBPASS']}"
    f"@{os.environ['DBHOST']}/{os.environ['DBNAME']}?sslmode=require"
)
