-- The example service's schema and data: `firedrill run ... --seed-sql
-- examples/app/seed.sql` loads it (as root, over the database's admin
-- port) before the service starts. 20,000 items of 256 bytes each, made
-- from a table of digits so it runs on MariaDB and MySQL alike.
DROP TABLE IF EXISTS items;
CREATE TABLE items (
  id      BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  version INT UNSIGNED NOT NULL,
  payload VARBINARY(1024) NOT NULL
);
DROP TABLE IF EXISTS seed_digits;
CREATE TABLE seed_digits (d INT NOT NULL PRIMARY KEY);
INSERT INTO seed_digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
INSERT INTO items (id, version, payload)
SELECT n, 1, REPEAT(SHA2(CAST(n AS CHAR), 256), 4)
FROM (
  SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n
  FROM seed_digits a, seed_digits b, seed_digits c, seed_digits e, seed_digits f
) nums
WHERE n <= 20000;
DROP TABLE seed_digits;
