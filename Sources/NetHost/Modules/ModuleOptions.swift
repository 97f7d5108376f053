import NetHostConfig
import NetHostLua

/// The options the module manager reads: which modules load where, where they
/// are found, and the limits of the Lua state they run in.
public enum ModuleOptions {
    public static let modulesEnabled = OptionDeclaration(
        "modules_enabled", .stringList,
        help: "modules to load: globally, or under a VirtualHost or Component in addition to the global ones",
        reload: .applied
    )
    public static let modulesDisabled = OptionDeclaration(
        "modules_disabled", .stringList,
        help: "modules not to load, globally or on one host; naming a module that does not exist is fine",
        reload: .applied
    )
    public static let pluginPaths = OptionDeclaration(
        "plugin_paths", .stringList, scope: .global,
        help: "folders searched for mod_NAME.lua and mod_NAME/mod_NAME.lua before NetHost's own modules (relative to the config)",
        reload: .restart(reason: "the module search path is fixed at start; modules a reload loads are looked for in the old folders")
    )
    public static let enabled = HostDefinition.enabledOption
    public static let forceModuleReload = OptionDeclaration(
        "force_module_reload", .boolean, default: "false",
        help: "reload a changed Lua module even when its module.save() fails",
        reload: .applied
    )
    public static let luaInstructionBudget = OptionDeclaration(
        "lua_instruction_budget", .integer, default: "\(LuaRuntime.defaultInstructionBudget)", scope: .global,
        help: "Lua instructions a callback, timer or module load may run before it is stopped; 0 for no limit",
        reload: .restart(reason: "set on the Lua state when it is made, at start")
    )
    public static let luaMemoryLimit = OptionDeclaration(
        "lua_memory_limit", .integer, scope: .global,
        help: "bytes the modules' Lua state may hold; no limit when unset",
        reload: .restart(reason: "set on the Lua state when it is made, at start")
    )

    public static let group = OptionRegistry.Group("modules", options: [
        modulesEnabled, modulesDisabled, pluginPaths, enabled, forceModuleReload, luaInstructionBudget, luaMemoryLimit,
        ProsodyLibrary.option, PerLoopLua.servicesOption, PerLoopLua.sharedDictBytesOption,
    ])
}
