// pgJDBC (Debian's libpostgresql-jdbc-java) against a server: the DatabaseMetaData
// calls Metabase and DBeaver sync with, a PreparedStatement run past the driver's
// prepareThreshold, getObject on every column, and fetch-size paging. Prints one
// line per fact, "section<TAB>value", so the test can compare two servers.
// Run: java -cp /usr/share/java/postgresql.jar JdbcClient.java <jdbc-url>
import java.sql.*;
import java.util.*;

public class JdbcClient {
    static void out(String section, Object... values) {
        StringBuilder b = new StringBuilder(section);
        for (Object v : values) b.append('\t').append(v);
        System.out.println(b);
    }

    interface Call { ResultSet get() throws SQLException; }

    // One failing call is reported and the rest still run, so a single run shows
    // every gap.
    static void rows(String section, Call call, String... cols) {
        try {
            rows(section, call.get(), cols);
        } catch (SQLException e) {
            out(section + ".error", e.getSQLState(), e.getMessage().split("\n")[0]);
        }
    }

    static void rows(String section, ResultSet rs, String... cols) throws SQLException {
        int n = 0;
        while (rs.next()) {
            n++;
            Object[] vals = new Object[cols.length];
            for (int i = 0; i < cols.length; i++) vals[i] = rs.getObject(cols[i]);
            if (cols.length > 0) out(section, vals);
        }
        out(section + ".count", n);
        rs.close();
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", "lambdadb");
        try (Connection c = DriverManager.getConnection(args[0], p)) {
            DatabaseMetaData md = c.getMetaData();
            out("product", md.getDatabaseProductName(), md.getDatabaseMajorVersion());
            rows("getCatalogs", () -> md.getCatalogs(), "TABLE_CAT");
            rows("getSchemas", () -> md.getSchemas(), "TABLE_SCHEM");
            rows("getTables", () -> md.getTables(null, "public", "%", null), "TABLE_NAME", "TABLE_TYPE");
            rows("getColumns", () -> md.getColumns(null, "public", "events", "%"),
                 "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "NULLABLE", "ORDINAL_POSITION");
            rows("getColumns.view", () -> md.getColumns(null, "public", "events_hourly", "%"),
                 "COLUMN_NAME", "TYPE_NAME");
            rows("getPrimaryKeys", () -> md.getPrimaryKeys(null, "public", "events"), "COLUMN_NAME");
            rows("getIndexInfo", () -> md.getIndexInfo(null, "public", "events", false, false), "INDEX_NAME");
            rows("getImportedKeys", () -> md.getImportedKeys(null, "public", "events"), "FKCOLUMN_NAME");
            Set<String> types = new TreeSet<>();
            try (ResultSet rs = md.getTypeInfo()) {
                while (rs.next()) types.add(rs.getString("TYPE_NAME"));
            }
            for (String t : List.of("bool", "int4", "int8", "float8", "numeric", "text", "timestamptz", "date"))
                out("getTypeInfo", t, types.contains(t));

            // Past prepareThreshold (5) the driver switches to a named server-side statement.
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT count(*), min(event_time), max(revenue) FROM events WHERE user_id > ? AND event_type = ?")) {
                String[] kinds = {"page_view", "click", "purchase"};
                for (int i = 0; i < 8; i++) {
                    ps.setLong(1, 100L * i);
                    ps.setString(2, kinds[i % 3]);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        out("prepared", i, rs.getLong(1), rs.getObject(2), rs.getObject(3));
                    }
                }
            }

            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery(
                     "SELECT * FROM events ORDER BY event_time, user_id, session_id, page LIMIT 3")) {
                ResultSetMetaData m = rs.getMetaData();
                for (int i = 1; i <= m.getColumnCount(); i++)
                    out("metadata", m.getColumnName(i), m.getColumnTypeName(i), m.getColumnType(i),
                        m.getColumnClassName(i));
                while (rs.next())
                    for (int i = 1; i <= m.getColumnCount(); i++) {
                        Object v = rs.getObject(i);
                        out("getObject", m.getColumnName(i), v == null ? "null" : v.getClass().getName(), v);
                    }
            }

            // Fetch-size paging: with autocommit off the driver reads a portal 100 rows at a time.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(100);
                long n = 0, sum = 0;
                try (ResultSet rs = st.executeQuery("SELECT user_id FROM events")) {
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                }
                out("fetchSize", n, sum);
            }
            c.commit();
        }
    }
}
