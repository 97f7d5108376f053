// NetHostLogging: the `log` option (Prosody's forms) and its sinks: files, console,
// syslog, levels, and repeated events folded into one line. Builds on the config layer.
