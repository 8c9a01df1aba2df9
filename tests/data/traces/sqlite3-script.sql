-- The SQL the sqlite3 trace runs (scripts/record-traces.sh): tables, 3000 rows made by a
-- recursive CTE, an index, joins, grouping, an update, a delete and a VACUUM.
CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
CREATE TABLE book(id INTEGER PRIMARY KEY, author INTEGER REFERENCES author(id), title TEXT, year INTEGER, pages INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO author SELECT i, 'author ' || i, CASE i % 4 WHEN 0 THEN 'NZ' WHEN 1 THEN 'FR' WHEN 2 THEN 'JP' ELSE 'BR' END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO book SELECT i, 1 + i % 300, printf('title %d: %s', i, hex(randomblob(12))), 1900 + i % 120, 50 + (i * 37) % 900 FROM n;
CREATE INDEX book_year ON book(year);
SELECT a.country, count(*), avg(b.pages) FROM book b JOIN author a ON a.id = b.author GROUP BY a.country ORDER BY 2 DESC;
SELECT year, count(*) FROM book WHERE year BETWEEN 1950 AND 1960 GROUP BY year;
SELECT a.name, group_concat(b.title, '; ') FROM author a JOIN book b ON b.author = a.id WHERE a.id < 20 GROUP BY a.id;
UPDATE book SET pages = pages + 1 WHERE year % 7 = 0;
DELETE FROM book WHERE id % 5 = 0;
SELECT count(*), sum(pages) FROM book;
VACUUM;
