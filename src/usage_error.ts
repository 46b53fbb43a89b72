/**
 * A bad option, environment value or file of the run file's: main (and
 * serve, for one client's rules) turns it into one `fatal:` line and exit
 * 100, before the client is touched. Its own module, so that the modules
 * that check their input (config, classify, allow, client) need not import
 * one another.
 */
export class UsageError extends Error {
  override name = "UsageError";
}
