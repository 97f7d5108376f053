// NetHostConfig: Prosody's config semantics (a config is Lua, run in a sandbox: sections,
// Include, FileContents, ENV_) and the option registry every layer and module fills.
// Imports the Lua bridge to run the config, and nothing of the host.
