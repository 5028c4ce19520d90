// node-postgres against one server; prints one JSON line per fact so the test
// can compare two servers. Usage: node client.js <port>
const { Client } = require("pg");

async function main() {
  const client = new Client({ host: "127.0.0.1", port: Number(process.argv[2]),
                              user: "lambdadb", database: "lambdadb" });
  await client.connect();
  const out = (section, value) => console.log(JSON.stringify({ section, value }));
  const fields = (r) => r.fields.map((f) => [f.name, f.dataTypeID]);

  // Simple protocol, values parsed by pg-types from text.
  let r = await client.query(
    "SELECT event_type, count(*) AS n, min(event_time) AS first, max(revenue) AS top " +
    "FROM events GROUP BY event_type ORDER BY event_type");
  out("simple.fields", fields(r));
  out("simple.rows", r.rows.map((x) => [x.event_type, x.n, x.first.toISOString(), x.top]));

  // Extended protocol with int, text, timestamptz and float parameters.
  r = await client.query(
    "SELECT count(*) AS n FROM events WHERE user_id > $1 AND event_type = $2 " +
    "AND event_time >= $3 AND coalesce(revenue, 0) >= $4",
    [1000, "purchase", new Date("2026-07-01T01:00:00Z"), 10.5]);
  out("params", [fields(r), r.rows]);

  // A named prepared statement, executed repeatedly (parsed once per connection).
  for (let i = 0; i < 6; i++) {
    r = await client.query({ name: "by_country", text:
      "SELECT country, count(*) AS n FROM events WHERE country = $1 GROUP BY country",
      values: [["US", "DE", "IN"][i % 3]] });
    out("named." + i, r.rows);
  }

  // Array rows and the view.
  r = await client.query({ text: "SELECT * FROM events_hourly ORDER BY hour, event_type, country LIMIT 5",
                           rowMode: "array" });
  out("view.fields", fields(r));
  out("view.rows", r.rows.map((row) => row.map((v) => (v instanceof Date ? v.toISOString() : v))));

  // What an ORM or admin UI reads to list columns.
  r = await client.query(
    "SELECT column_name, data_type, udt_name FROM information_schema.columns " +
    "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", ["events"]);
  out("columns", r.rows);

  // An error keeps the connection usable.
  try {
    await client.query("SELECT no_such_column FROM events");
    out("error", "none");
  } catch (e) {
    out("error", e.code);
  }
  r = await client.query("SELECT 1 AS one");
  out("after_error", r.rows);
  await client.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
