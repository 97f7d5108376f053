// NetHostLua: the runtime of Lua modules. One Lua state on one loop; the module API
// (real Lua files in ModuleAPI/, embedded at build time), Lua listeners and timers, and
// the `conn` object. Builds on the host core and the Lua bridge.
