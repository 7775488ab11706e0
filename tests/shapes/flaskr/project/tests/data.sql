-- Two users (passwords "test" and "other", cheap hashes) and one post by "test".
INSERT INTO user (username, password)
VALUES
  ('test', 'pbkdf2:sha256:1000$0EmYk77hjTtci4cp$40b801fe3e975ea6eff7d7032daad1ba3ecb87ef8b50581d0f6982028d25860b'),
  ('other', 'pbkdf2:sha256:1000$SIHeVYRmefJ2H33q$b4f05b725504b4e9aa48a22155636bbfa0466ae4a88798b14c56b86e81aca949');

INSERT INTO post (title, body, author_id, created)
VALUES
  ('first post', 'hello' || x'0a' || 'world', 1, '2024-05-17 09:30:00');
