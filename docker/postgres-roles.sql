-- Run once by the postgres image when its volume is created (as POSTGRES_USER,
-- a superuser, who then owns the tables and migrates: MIGRATION_DATABASE_URL).
-- The server logs in as concord_server: no superuser, no BYPASSRLS (a production
-- start refuses those), a member of concord_app, which every transaction runs as
-- and which the migrations give its grants.
CREATE ROLE concord_app NOLOGIN;
CREATE ROLE concord_server LOGIN PASSWORD 'concord_server' IN ROLE concord_app;
