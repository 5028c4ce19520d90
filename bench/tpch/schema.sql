-- TPC-H tables as lambdadb source tables. Each has a topic (new rows would
-- arrive there); the benchmark fills them with COPY ... FROM (FORMAT parquet),
-- which imports tpchgen-cli's files into the master dataset.
CREATE TABLE IF NOT EXISTS nation (
    n_nationkey BIGINT NOT NULL, n_name TEXT NOT NULL, n_regionkey BIGINT NOT NULL,
    n_comment TEXT NOT NULL
) WITH (topic = 'tpch_nation', format = 'json');
CREATE TABLE IF NOT EXISTS region (
    r_regionkey BIGINT NOT NULL, r_name TEXT NOT NULL, r_comment TEXT NOT NULL
) WITH (topic = 'tpch_region', format = 'json');
CREATE TABLE IF NOT EXISTS part (
    p_partkey BIGINT NOT NULL, p_name TEXT NOT NULL, p_mfgr TEXT NOT NULL,
    p_brand TEXT NOT NULL, p_type TEXT NOT NULL, p_size INTEGER NOT NULL,
    p_container TEXT NOT NULL, p_retailprice NUMERIC(15,2) NOT NULL, p_comment TEXT NOT NULL
) WITH (topic = 'tpch_part', format = 'json');
CREATE TABLE IF NOT EXISTS supplier (
    s_suppkey BIGINT NOT NULL, s_name TEXT NOT NULL, s_address TEXT NOT NULL,
    s_nationkey BIGINT NOT NULL, s_phone TEXT NOT NULL, s_acctbal NUMERIC(15,2) NOT NULL,
    s_comment TEXT NOT NULL
) WITH (topic = 'tpch_supplier', format = 'json');
CREATE TABLE IF NOT EXISTS partsupp (
    ps_partkey BIGINT NOT NULL, ps_suppkey BIGINT NOT NULL, ps_availqty INTEGER NOT NULL,
    ps_supplycost NUMERIC(15,2) NOT NULL, ps_comment TEXT NOT NULL
) WITH (topic = 'tpch_partsupp', format = 'json');
CREATE TABLE IF NOT EXISTS customer (
    c_custkey BIGINT NOT NULL, c_name TEXT NOT NULL, c_address TEXT NOT NULL,
    c_nationkey BIGINT NOT NULL, c_phone TEXT NOT NULL, c_acctbal NUMERIC(15,2) NOT NULL,
    c_mktsegment TEXT NOT NULL, c_comment TEXT NOT NULL
) WITH (topic = 'tpch_customer', format = 'json');
CREATE TABLE IF NOT EXISTS orders (
    o_orderkey BIGINT NOT NULL, o_custkey BIGINT NOT NULL, o_orderstatus TEXT NOT NULL,
    o_totalprice NUMERIC(15,2) NOT NULL, o_orderdate DATE NOT NULL,
    o_orderpriority TEXT NOT NULL, o_clerk TEXT NOT NULL, o_shippriority INTEGER NOT NULL,
    o_comment TEXT NOT NULL
) WITH (topic = 'tpch_orders', format = 'json');
CREATE TABLE IF NOT EXISTS lineitem (
    l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, l_suppkey BIGINT NOT NULL,
    l_linenumber INTEGER NOT NULL, l_quantity NUMERIC(15,2) NOT NULL,
    l_extendedprice NUMERIC(15,2) NOT NULL, l_discount NUMERIC(15,2) NOT NULL,
    l_tax NUMERIC(15,2) NOT NULL, l_returnflag TEXT NOT NULL, l_linestatus TEXT NOT NULL,
    l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL,
    l_shipinstruct TEXT NOT NULL, l_shipmode TEXT NOT NULL, l_comment TEXT NOT NULL
) WITH (topic = 'tpch_lineitem', format = 'json');
