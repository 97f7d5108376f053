import NetHostLua

/// Reloading: a module whose file changed (Prosody's module reload), and the
/// whole config (SIGHUP).
extension ModuleManager {
    /// After the options were replaced: every native module checks its new
    /// options first (one refusal and nothing changes), then they apply them;
    /// Lua modules whose file changed are reloaded; modules the config no longer
    /// asks for, and that no module still loaded depends on, are unloaded; those
    /// it now asks for are loaded.
    public func reload() throws {
        var apply: [@Sendable () -> Void] = []
        for key in inLoadOrder(loaded.keys) {
            guard case .native(let module)? = loaded[key]?.module else { continue }
            do {
                apply.append(try module.prepareReload())
            } catch {
                throw LoadError(module: key.name, reason: "\(error)", isConfigurationError: true)
            }
        }
        for step in apply { step() }
        plan = ModulePlan(options: options)
        reportPlanProblems()

        var reloaded: Set<ModuleKey> = []
        for key in inLoadOrder(loaded.keys) where !reloaded.contains(key) {
            guard case .lua(let path, let version)? = loaded[key]?.module, FileVersion(path: path) != version else { continue }
            reloadLuaModule(key, cascade: &reloaded)
        }

        let keep = modulesToKeep()
        for key in inLoadOrder(loaded.keys).reversed() where !keep.contains(key) {
            unload(key)
        }

        let before = Set(loaded.keys)
        let failures = loadPlannedModules()
        for key in inLoadOrder(Set(loaded.keys).subtracting(before)) {
            logger.info("loaded module \(key) on reload")
        }
        for failure in failures where !failure.isProsodyXMPPModule {
            logger.error("\(failure)")
            problems.add(failure.description)
        }
    }

    /// What the config asks for, and what that depends on, except a dependency the
    /// config now disables (then it goes, and what depends on it with it).
    private func modulesToKeep() -> Set<ModuleKey> {
        var wanted = Set(plan.global.map { ModuleKey($0) })
        for host in plan.hosts {
            for name in host.modules {
                let global = ModuleKey(name)
                if loaded[global] != nil || nativeModule(named: name) != nil || plan.global.contains(name) {
                    wanted.insert(global)
                }
                wanted.insert(ModuleKey(name, host: host.name))
            }
        }
        return dependencies.closure(of: wanted.filter { loaded[$0] != nil }) { key in
            plan.disabled(on: key.host).contains(key.name)
        }
    }

    /// Reloads a Lua module from its file, as Prosody's module reload does. The
    /// new file must compile and the old module's `save` must succeed (unless
    /// `force_module_reload` is set), or the running module stays as it is. Then
    /// the old module's `unload` runs with `module.reloading` set, the new code
    /// loads with `module.reloading` and `module.saved_state` set, `restore` gets
    /// what `save` returned (or an empty table), `module-reloaded` fires, and the
    /// modules that depend on it are reloaded in turn, since they hold its old
    /// environment. Open connections keep the code they started with. If the new
    /// code fails to load, the error is logged and the module is unloaded, with
    /// the modules that depend on it.
    public func reloadLuaModule(_ name: String, host: String = ModuleKey.globalHost) {
        var cascade: Set<ModuleKey> = []
        reloadLuaModule(ModuleKey(name, host: host), cascade: &cascade)
    }

    /// `cascade`: the modules this reload has reached, none of which is reloaded twice.
    func reloadLuaModule(_ key: ModuleKey, cascade: inout Set<ModuleKey>) {
        guard let entry = loaded[key] else { return }
        guard case .lua(let path, _) = entry.module else {
            if case .hosted = entry.module { reloadHosted(key, cascade: &cascade) }
            return
        }
        cascade.insert(key)
        do {
            try runtime.prepareReload(name: key.name, host: key.host)
        } catch {
            logger.error("module \(key) was not reloaded; the running one stays: \(error.fullDescription)")
            problems.add("module \(key) was not reloaded: \(error.message)")
            return
        }
        // Its add_host instances go with the old code and come back from the new.
        let hosted = key.isGlobal ? hostedInstances(of: key.name) : []
        for instance in hosted.reversed() {
            loaded[instance] = nil
            runtime.unloadModule(name: instance.name, host: instance.host)
            dependencies.removeDependencies(of: instance)
        }
        loaded[key] = nil
        dependencies.removeDependencies(of: key)
        let whereItIs: String
        loading.insert(key)
        do {
            whereItIs = try runtime.finishReload(name: key.name, host: key.host)
            loading.remove(key)
        } catch {
            loading.remove(key)
            logger.error("reloading module \(key) failed, it is unloaded: \(error.fullDescription)")
            problems.add("module \(key) failed to reload: \(error.message)")
            for instance in hosted { lost(instance) }
            lost(key)
            return
        }
        let actual = ModuleKey(key.name, host: whereItIs)
        dependencies.rename(key, to: actual)
        record(actual, .lua(path: path, version: FileVersion(path: path)), order: entry.order)
        logger.info("reloaded module \(key) from \(path)")
        var restored: [ModuleKey] = []
        for instance in hosted {
            do {
                if try addHost(instance.name, host: instance.host) { restored.append(instance) }
            } catch {
                logger.error("\(error)")
                problems.add("\(error)")
                lost(instance)
            }
        }
        runtime.fireLifecycle("module-reloaded", name: actual.name, host: actual.host)
        for instance in restored {
            runtime.fireLifecycle("module-reloaded", name: instance.name, host: instance.host)
        }
        let dependents = ([actual] + restored).flatMap { dependencies.dependents(of: $0) }
        for dependent in inLoadOrder(Set(dependents)) where !cascade.contains(dependent) {
            logger.info("reloading module \(dependent): it depends on module \(actual), which was reloaded")
            reloadLuaModule(dependent, cascade: &cascade)
        }
    }

    /// A reload reached an add_host instance (it depends on a reloaded module):
    /// it is given to add_host again.
    private func reloadHosted(_ key: ModuleKey, cascade: inout Set<ModuleKey>) {
        guard let entry = loaded[key] else { return }
        cascade.insert(key)
        loaded[key] = nil
        runtime.unloadModule(name: key.name, host: key.host)
        dependencies.removeDependencies(of: key)
        do {
            guard try addHost(key.name, host: key.host) else { return lost(key) }
            loaded[key]?.order = entry.order
        } catch {
            logger.error("\(error)")
            problems.add("\(error)")
            return lost(key)
        }
        runtime.fireLifecycle("module-reloaded", name: key.name, host: key.host)
        for dependent in inLoadOrder(dependencies.dependents(of: key)) where !cascade.contains(dependent) {
            reloadLuaModule(dependent, cascade: &cascade)
        }
    }

    /// A module that a reload unloaded and could not load again: as Prosody
    /// does, `module-unloaded` fires, and what depends on it is unloaded.
    private func lost(_ key: ModuleKey) {
        runtime.fireLifecycle("module-unloaded", name: key.name, host: key.host)
        unloadDependents(of: key)
    }
}
