// The parts of Lua's C API that are macros, as functions Swift can import.
// Every wrapper keeps the exact stack effect of the macro it stands for.
#ifndef NETHOST_CLUA_SHIM_H
#define NETHOST_CLUA_SHIM_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

static inline int nethost_lua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int nethost_lua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline int nethost_lua_multret(void) { return LUA_MULTRET; }
static inline lua_Integer nethost_lua_ridx_globals(void) { return LUA_RIDX_GLOBALS; }

static inline void nethost_lua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void nethost_lua_newtable(lua_State *L) { lua_newtable(L); }
static inline void nethost_lua_insert(lua_State *L, int idx) { lua_insert(L, idx); }
static inline void nethost_lua_remove(lua_State *L, int idx) { lua_remove(L, idx); }
static inline void nethost_lua_replace(lua_State *L, int idx) { lua_replace(L, idx); }
static inline int nethost_lua_isnoneornil(lua_State *L, int idx) { return lua_isnoneornil(L, idx); }
static inline lua_Number nethost_lua_tonumber(lua_State *L, int idx, int *isnum) { return lua_tonumberx(L, idx, isnum); }
static inline lua_Integer nethost_lua_tointeger(lua_State *L, int idx, int *isnum) { return lua_tointegerx(L, idx, isnum); }
static inline void *nethost_lua_newuserdata(lua_State *L, size_t size) { return lua_newuserdatauv(L, size, 1); }
static inline int nethost_lua_getuservalue(lua_State *L, int idx) { return lua_getiuservalue(L, idx, 1); }
static inline int nethost_lua_setuservalue(lua_State *L, int idx) { return lua_setiuservalue(L, idx, 1); }
static inline void nethost_luaL_getmetatable(lua_State *L, const char *name) { luaL_getmetatable(L, name); }
static inline int nethost_lua_gc(lua_State *L, int what) { return lua_gc(L, what, 0); }
/* Generational mode with Lua's default multipliers (lua_gc reads two more ints for LUA_GCGEN). */
static inline int nethost_lua_gc_generational(lua_State *L) { return lua_gc(L, LUA_GCGEN, 0, 0); }
static inline int nethost_lua_yield(lua_State *L, int nresults) { return lua_yield(L, nresults); }


/// An allocator that counts the state's memory and, while `enforcing`, refuses
/// to grow past `limit` (Lua then raises a memory error in the running code).
/// Enforcement is switched on only inside protected calls: an allocation
/// refused outside one would make Lua panic.
typedef struct {
    size_t used;
    size_t limit;
    int enforcing;
    /// How many Swift host functions are running now. While one runs the limit is
    /// not applied: a refused allocation would raise a memory error whose longjmp
    /// crosses its Swift frames (skipping their cleanup). The Lua code that runs
    /// after it returns meets the limit at its next allocation instead.
    int host_depth;
    /// Set once the host is gone (the runtime was deallocated without closing the
    /// state first): a finalizer that calls a host function then gets an error,
    /// raised in C, instead of reaching Swift objects that no longer exist.
    int host_stopped;
    /// The instruction budget, shared by every thread (coroutine) of the state.
    long long budget_remaining;
    int budget_active;
} nethost_allocator_state;

static inline void *nethost_limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    nethost_allocator_state *state = (nethost_allocator_state *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        state->used -= old;
        return NULL;
    }
    if (state->enforcing && state->host_depth == 0 && state->limit > 0 && nsize > old && state->used - old + nsize > state->limit) {
        return NULL;
    }
    void *grown = realloc(ptr, nsize);
    if (grown != NULL) {
        state->used = state->used - old + nsize;
    }
    return grown;
}

static inline void nethost_budget_hook(lua_State *L, lua_Debug *ar);
/// Instructions between two calls of the budget hook on each thread.
#define NETHOST_BUDGET_STEP 1000

static inline lua_State *nethost_newstate(void) {
    nethost_allocator_state *state = (nethost_allocator_state *)calloc(1, sizeof(nethost_allocator_state));
    if (state == NULL) return NULL;
    lua_State *L = lua_newstate(nethost_limited_alloc, state);
    if (L == NULL) {
        free(state);
        return NULL;
    }
    lua_sethook(L, nethost_budget_hook, LUA_MASKCOUNT, NETHOST_BUDGET_STEP);
    return L;
}

static inline nethost_allocator_state *nethost_allocator(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (nethost_allocator_state *)ud;
}


/// A protected call. The Lua code it runs meets the memory limit again even when
/// a Swift host function made the call; the depth of host functions is restored
/// afterwards however the call ended.
static inline int nethost_lua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    nethost_allocator_state *state = nethost_allocator(L);
    int host_depth = state->host_depth;
    state->host_depth = 0;
    int status = lua_pcall(L, nargs, nresults, msgh);
    state->host_depth = host_depth;
    return status;
}

/// A Swift function Lua can call. It returns the number of results it pushed,
/// or -1 after pushing an error value, which the trampoline then raises: the
/// longjmp of lua_error must never cross a Swift frame.
typedef int (*nethost_swift_function)(lua_State *L);

static inline int nethost_swift_trampoline(lua_State *L) {
    nethost_swift_function fn = (nethost_swift_function)lua_touserdata(L, lua_upvalueindex(1));
    nethost_allocator_state *state = nethost_allocator(L);
    if (state->host_stopped) {
        lua_pushliteral(L, "NetHost has stopped: host functions are no longer available");
        return lua_error(L);
    }
    state->host_depth += 1;
    int results = fn(L);
    state->host_depth -= 1;
    if (results < 0) {
        return lua_error(L);
    }
    return results;
}

/// Pushes a C closure that calls `fn` through the trampoline. The `nup` values
/// on top of the stack become upvalues 2...nup+1; upvalue 1 is `fn` itself.
static inline void nethost_push_swift_function(lua_State *L, nethost_swift_function fn, int nup) {
    lua_pushlightuserdata(L, (void *)fn);
    lua_insert(L, -(nup + 1));
    lua_pushcclosure(L, nethost_swift_trampoline, nup + 1);
}

/// The instruction budget. The count hook is set on the main thread when the state
/// is made, so every coroutine, which copies its creator's hook, has it too; the
/// budget itself lives in the state-wide allocator struct. While no budget is active
/// the hook returns at once. Once a budget is spent the hook raises an error, and
/// then fires at every instruction of that thread: a `pcall` in a loop cannot
/// swallow the error and go on, since the loop's own next instruction fails too.
static inline void nethost_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    nethost_allocator_state *state = nethost_allocator(L);
    if (!state->budget_active) {
        if (lua_gethookcount(L) != NETHOST_BUDGET_STEP) {
            lua_sethook(L, nethost_budget_hook, LUA_MASKCOUNT, NETHOST_BUDGET_STEP);
        }
        return;
    }
    if (state->budget_remaining > 0) {
        state->budget_remaining -= lua_gethookcount(L);
        if (state->budget_remaining > 0) return;
    }
    lua_sethook(L, nethost_budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "instruction budget exceeded");
}

/// Starts a budget of `count` instructions for everything the state runs until
/// the next call; 0 switches it off.
static inline void nethost_set_instruction_budget(lua_State *L, int count) {
    nethost_allocator_state *state = nethost_allocator(L);
    state->budget_remaining = count;
    state->budget_active = count > 0;
    lua_sethook(L, nethost_budget_hook, LUA_MASKCOUNT, NETHOST_BUDGET_STEP);
}

/// The budget in force, to put back after work that needs a budget of its own.
typedef struct {
    long long remaining;
    int active;
} nethost_budget;

static inline nethost_budget nethost_current_budget(lua_State *L) {
    nethost_allocator_state *state = nethost_allocator(L);
    nethost_budget budget = { state->budget_remaining, state->budget_active };
    return budget;
}

static inline void nethost_restore_budget(lua_State *L, nethost_budget budget) {
    nethost_allocator_state *state = nethost_allocator(L);
    state->budget_remaining = budget.remaining;
    state->budget_active = budget.active;
    lua_sethook(L, nethost_budget_hook, LUA_MASKCOUNT, NETHOST_BUDGET_STEP);
}

static inline void nethost_stop_host(lua_State *L) { nethost_allocator(L)->host_stopped = 1; }

static inline void nethost_close(lua_State *L) {
    nethost_allocator_state *state = nethost_allocator(L);
    lua_close(L);
    free(state);
}

static inline void nethost_set_memory_limit(lua_State *L, size_t limit) { nethost_allocator(L)->limit = limit; }
/// Switches enforcement on or off; returns whether it was on.
static inline int nethost_enforce_memory_limit(lua_State *L, int on) {
    nethost_allocator_state *state = nethost_allocator(L);
    int was = state->enforcing;
    state->enforcing = on;
    return was;
}
static inline size_t nethost_memory_used(lua_State *L) { return nethost_allocator(L)->used; }

/// Message handler for protected calls: turns the error into "message\ntraceback".
/// Non-string error values are converted with __tostring when they have one.
static inline int nethost_traceback_handler(lua_State *L) {
    const char *message = lua_tostring(L, 1);
    if (message == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
            message = lua_tostring(L, -1);
        } else {
            message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        }
    }
    luaL_traceback(L, L, message, 1);
    return 1;
}

static inline int nethost_push_traceback_handler(lua_State *L) {
    lua_pushcfunction(L, nethost_traceback_handler);
    return lua_gettop(L);
}

/* MARK: Source chunks only
 *
 * Lua 5.4 runs precompiled chunks (bytecode) without verifying them, and crafted
 * bytecode reads and writes arbitrary memory. Every loader a Lua state offers is
 * therefore replaced by one that loads text only (mode "t"); string.dump, which
 * makes bytecode, is removed. Lua raises errors here, in C, never through Swift.
 */

/* What Lua says when mode "t" meets a binary chunk (ldo.c, checkmode). It reads
 * "mode is 't'" even when the caller asked for "bt", so it is replaced by a text
 * that says why. If a later Lua words it differently the chunk is still refused,
 * only with Lua's own message. */
#define NETHOST_LUA_BINARY_REFUSAL "attempt to load a binary chunk (mode is 't')"
#define NETHOST_BINARY_REFUSED "precompiled Lua (a binary chunk) is not allowed: NetHost loads Lua source only"

/* After a failed load with the message on top: rewrites Lua's refusal of a binary
 * chunk, prefixed with `where` (a file name) when given. [-1, +1] */
static inline void nethost_explain_binary_refusal(lua_State *L, int status, const char *where) {
    const char *message = lua_tostring(L, -1);
    if (status != LUA_ERRSYNTAX || message == NULL || strcmp(message, NETHOST_LUA_BINARY_REFUSAL) != 0) return;
    lua_pop(L, 1);
    if (where != NULL) {
        lua_pushfstring(L, "%s: %s", where, NETHOST_BINARY_REFUSED);
    } else {
        lua_pushstring(L, NETHOST_BINARY_REFUSED);
    }
}

/* Compiles source text; binary chunks are refused. [-0, +1]: the function, or the message. */
static inline int nethost_load_source(lua_State *L, const char *buffer, size_t size, const char *chunkname) {
    int status = luaL_loadbufferx(L, buffer, size, chunkname, "t");
    if (status != LUA_OK) nethost_explain_binary_refusal(L, status, NULL);
    return status;
}

/* The optional mode argument at `arg` of load/loadfile: a caller may still pass
 * "bt" (Lua's default, common in portable code) and get text; a mode without
 * 't' can load nothing here. Returns 0 after pushing fail and a message. */
static inline int nethost_check_text_mode(lua_State *L, int arg) {
    const char *mode = luaL_optstring(L, arg, "bt");
    if (strchr(mode, 't') != NULL) return 1;
    luaL_pushfail(L);
    lua_pushfstring(L, "load mode '%s' refused: " NETHOST_BINARY_REFUSED, mode);
    return 0;
}

/* As lbaselib.c's load_aux: the function, with `envidx` (if not 0) as its _ENV,
 * or fail plus the message. */
static inline int nethost_load_result(lua_State *L, int status, int envidx) {
    if (status == LUA_OK) {
        if (envidx != 0) {
            lua_pushvalue(L, envidx);
            if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
        }
        return 1;
    }
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

/* The stack slot where the reader keeps the piece it hands to lua_load, so the
 * collector cannot free it meanwhile (as lbaselib.c's RESERVEDSLOT). */
#define NETHOST_READER_SLOT 5

static inline const char *nethost_function_reader(lua_State *L, void *ud, size_t *size) {
    (void)ud;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1)) luaL_error(L, "reader function must return a string");
    lua_replace(L, NETHOST_READER_SLOT);
    return lua_tolstring(L, NETHOST_READER_SLOT, size);
}

/* load(chunk [, chunkname [, mode [, env]]]), as Lua's, text only. */
static inline int nethost_load(lua_State *L) {
    size_t length;
    const char *source = lua_tolstring(L, 1, &length);
    int envidx = !lua_isnone(L, 4) ? 4 : 0;
    if (!nethost_check_text_mode(L, 3)) return 2;
    int status;
    if (source != NULL) {
        const char *chunkname = luaL_optstring(L, 2, source);
        status = luaL_loadbufferx(L, source, length, chunkname, "t");
    } else {
        const char *chunkname = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, NETHOST_READER_SLOT);
        status = lua_load(L, nethost_function_reader, NULL, chunkname, "t");
    }
    if (status != LUA_OK) nethost_explain_binary_refusal(L, status, NULL);
    return nethost_load_result(L, status, envidx);
}

/* loadfile([filename [, mode [, env]]]), as Lua's, text only. */
static inline int nethost_loadfile(lua_State *L) {
    const char *filename = luaL_optstring(L, 1, NULL);
    int envidx = !lua_isnone(L, 3) ? 3 : 0;
    if (!nethost_check_text_mode(L, 2)) return 2;
    int status = luaL_loadfilex(L, filename, "t");
    if (status != LUA_OK) nethost_explain_binary_refusal(L, status, filename ? filename : "stdin");
    return nethost_load_result(L, status, envidx);
}

static inline int nethost_dofile_continue(lua_State *L, int status, lua_KContext context) {
    (void)status;
    (void)context;
    return lua_gettop(L) - 1;
}

/* dofile([filename]), as Lua's, text only. */
static inline int nethost_dofile(lua_State *L) {
    const char *filename = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    int status = luaL_loadfilex(L, filename, "t");
    if (status != LUA_OK) {
        nethost_explain_binary_refusal(L, status, filename ? filename : "stdin");
        return lua_error(L);
    }
    lua_callk(L, 0, LUA_MULTRET, 0, nethost_dofile_continue);
    return nethost_dofile_continue(L, 0, 0);
}

/* package.searchers[2], the searcher for Lua files on package.path, text only.
 * Upvalue 1 is the package table (package.path is read at each search, as Lua
 * does), upvalue 2 the original package.searchpath. */
static inline int nethost_search_lua_source(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    if (lua_getfield(L, lua_upvalueindex(1), "path") != LUA_TSTRING) {
        return luaL_error(L, "'package.path' must be a string");
    }
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) return 1;  /* not found: the list of files tried, for require's message */
    lua_pop(L, 1);
    const char *filename = lua_tostring(L, -1);
    int status = luaL_loadfilex(L, filename, "t");
    if (status != LUA_OK) {
        nethost_explain_binary_refusal(L, status, NULL);
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename, lua_tostring(L, -1));
    }
    lua_insert(L, -2);  /* the loader, then the file name as its second argument */
    return 2;
}

/* Replaces `name` in the table on top with `fn`, if the table has that field. [-0, +0] */
static inline void nethost_replace_if_present(lua_State *L, const char *name, lua_CFunction fn) {
    int present = lua_getfield(L, -1, name) != LUA_TNIL;
    lua_pop(L, 1);
    if (!present) return;
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
}

static inline int nethost_restrict_to_source_body(lua_State *L) {
    lua_pushglobaltable(L);
    nethost_replace_if_present(L, "load", nethost_load);
    nethost_replace_if_present(L, "loadfile", nethost_loadfile);
    nethost_replace_if_present(L, "dofile", nethost_dofile);
    lua_pop(L, 1);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    /* The string library table is also the strings' metatable __index, so this
     * removes ("").dump too. */
    if (lua_getfield(L, -1, LUA_STRLIBNAME) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_setfield(L, -2, "dump");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE) {
        /* Only the Lua-file searcher is replaced. The C-library searchers
         * (searchers[3] and [4]) and package.loadlib stay for now: Prosody's util
         * library has C modules that modules will need. While they stay, this is no
         * wall against a hostile module: loadlib can reopen Lua's own libraries from
         * liblua (luaopen_string has dump, luaopen_base the "bt" load) or call any
         * C function. Restricting C loading to known paths is the later issue's. */
        if (lua_getfield(L, -1, "searchers") == LUA_TTABLE) {
            lua_pushvalue(L, -2);
            lua_getfield(L, -1, "searchpath");
            lua_pushcclosure(L, nethost_search_lua_source, 2);
            lua_rawseti(L, -2, 2);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return 0;
}

/* Makes every loader of the state load source text only, and removes string.dump.
 * Runs protected: LUA_OK, or an error status with the message on top. */
static inline int nethost_restrict_to_source(lua_State *L) {
    lua_pushcfunction(L, nethost_restrict_to_source_body);
    return lua_pcall(L, 0, 0, 0);
}

#endif
