// NetHostLogging: the `log` option (Prosody's forms) and its sinks: files, console,
// syslog, levels, and repeated events folded into one line. A log call only queues its
// line; one writer thread writes them (LogWriter). Builds on the config layer.
