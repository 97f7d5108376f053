// LuaBridge: Lua 5.4 (CLua) behind a safe Swift face: states, stacks, Swift functions
// and objects in Lua, registry references. The only importer of CLua; knows nothing of
// config, connections or modules.
