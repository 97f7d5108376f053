import NetHostLua

/// Which loaded module depends on which (`module:depends`), so that a module is
/// reloaded and unloaded with the modules it depends on, as Prosody's
/// `module:depends` arranges with its module-reloaded and module-unloaded hooks,
/// and a module loaded only as a dependency stays while something needs it.
struct ModuleDependencies {
    /// dependent -> the modules it asked for.
    private var edges: [ModuleKey: Set<ModuleKey>] = [:]

    mutating func add(_ dependency: ModuleKey, of dependent: ModuleKey) {
        guard dependency != dependent else { return }
        edges[dependent, default: []].insert(dependency)
    }

    /// Forgets what `module` depends on (it was unloaded, or is loading afresh).
    mutating func removeDependencies(of module: ModuleKey) {
        edges[module] = nil
    }

    /// A module that moved (it called `set_global` while loading on a host) keeps its dependencies.
    mutating func rename(_ old: ModuleKey, to new: ModuleKey) {
        guard old != new, let dependencies = edges.removeValue(forKey: old) else { return }
        edges[new, default: []].formUnion(dependencies.filter { $0 != new })
        for (dependent, dependencies) in edges where dependencies.contains(old) {
            edges[dependent]?.remove(old)
            if dependent != new { edges[dependent]?.insert(new) }
        }
    }

    /// The modules that depend on `module` directly.
    func dependents(of module: ModuleKey) -> [ModuleKey] {
        edges.filter { $0.value.contains(module) }.map(\.key)
    }

    /// `roots` and everything they depend on, directly or not, except what
    /// `excluded` refuses (a dependency the config now disables).
    func closure(of roots: Set<ModuleKey>, excluding excluded: (ModuleKey) -> Bool) -> Set<ModuleKey> {
        var result = roots
        var pending = Array(roots)
        while let next = pending.popLast() {
            for dependency in edges[next] ?? [] where !excluded(dependency) && result.insert(dependency).inserted {
                pending.append(dependency)
            }
        }
        return result
    }
}
