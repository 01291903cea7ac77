// Runs once, when the mongo container starts on an empty data directory
// (/docker-entrypoint-initdb.d), authenticated as the root user of MONGO_INITDB_ROOT_*.
// Creates the user the services connect as (CRS_MONGO_USERNAME / CRS_MONGO_PASSWORD from .env):
// read and write on every database (each service has its own, crs_<service>), nothing else.
db.getSiblingDB("admin").createUser({
  user: process.env.CRS_MONGO_USERNAME,
  pwd: process.env.CRS_MONGO_PASSWORD,
  roles: [{ role: "readWriteAnyDatabase", db: "admin" }],
});
