/* fastlua.c — LuaJIT with fastc built in: scripts, -e, -m, -i and a REPL.
 *
 * The whole of libfastc is linked in and exported (-rdynamic), so the Lua
 * package reaches it through ffi.C with no library to find. package.path
 * gets the lua/ directory next to the executable (the build tree) and the
 * installed one, so `require 'fastc'` works from anywhere. */
#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fastc.h"

#ifndef FASTC_LUA_DIR
#define FASTC_LUA_DIR "/usr/local/share/fastc/lua"
#endif

static lua_State *globalL;
static const char *progname = "fastlua";

/* ---- errors and interruption ----------------------------------------- */

static void report(lua_State *L, int status) {
  if (status && !lua_isnil(L, -1)) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
}

/* Ctrl-C sets a hook that raises "interrupted" at the next Lua instruction. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void on_sigint(int sig) {
  signal(sig, SIG_DFL);
  lua_sethook(globalL, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int traceback(lua_State *L) {
  if (!lua_isstring(L, 1)) return 1;
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

/* Calls the function below `narg` arguments with a traceback handler. */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  globalL = L;
  signal(SIGINT, on_sigint);
  int status = lua_pcall(L, narg, nres, base);
  signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}

/* ---- set-up ----------------------------------------------------------- */

/* Prepends the build-tree and installed Lua dirs (and FASTC_LUA_PATH). */
static void set_paths(lua_State *L) {
  char exe[4096], buf[16384];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  const char *extra = getenv("FASTC_LUA_PATH");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  snprintf(buf, sizeof buf, "%s%s%s/../lua/?.lua;%s/../lua/?/init.lua;%s/?.lua;%s/?/init.lua;%s",
           extra ? extra : "", extra ? ";" : "", exe, exe, FASTC_LUA_DIR, FASTC_LUA_DIR,
           lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushstring(L, buf);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* The standard `arg` table: arg[0] the script, arg[1..] its arguments,
 * negative indices the interpreter and its options. */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int push_args(lua_State *L, char **argv, int argc, int script) {
  int n = 0;
  for (int i = script + 1; i < argc; i++, n++) lua_pushstring(L, argv[i]);
  return n;
}

/* ---- running code ----------------------------------------------------- */

static int run_string(lua_State *L, const char *code, const char *name) {
  int status = luaL_loadbuffer(L, code, strlen(code), name);
  if (status == 0) status = docall(L, 0, 0);
  report(L, status);
  return status;
}

static int run_script(lua_State *L, char **argv, int argc, int script) {
  const char *file = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
  set_arg(L, argv, argc, script);
  int status = luaL_loadfile(L, file);
  if (status == 0) status = docall(L, push_args(L, argv, argc, script), 0);
  report(L, status);
  return status;
}

/* -m name: require(name) with arg set, like python -m. */
static int run_module(lua_State *L, char **argv, int argc, int at) {
  set_arg(L, argv, argc, at);
  lua_getglobal(L, "require");
  lua_pushstring(L, argv[at]);
  int status = docall(L, 1, 0);
  report(L, status);
  return status;
}

/* ---- the REPL ------------------------------------------------------------- */

static int interactive;

static char *read_line(const char *prompt) {
  if (interactive) return readline(prompt);
  static char buf[65536];
  if (!fgets(buf, sizeof buf, stdin)) return NULL;
  size_t n = strlen(buf);
  if (n && buf[n - 1] == '\n') buf[n - 1] = 0;
  return strdup(buf);
}

/* A chunk is incomplete when it fails to compile at <eof>. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  const char *tail = "'<eof>'";
  size_t tl = strlen(tail);
  if (len >= tl && strcmp(msg + len - tl, tail) == 0) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* Compiles one statement, reading more lines while it is incomplete. A
 * line that is an expression is compiled as `return <line>` so it prints. */
static int load_statement(lua_State *L) {
  char *line = read_line("> ");
  if (!line) return -1;
  const char *src = line[0] == '=' ? line + 1 : line;
  lua_pushfstring(L, "return %s", src);
  int status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (status == 0) {
    if (interactive && *line) add_history(line);
    free(line);
    return 0;
  }
  lua_pop(L, 1);
  lua_pushstring(L, src);
  free(line);
  for (;;) {
    status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
    if (!incomplete(L, status)) break;
    char *more = read_line(">> ");
    if (!more) break;
    lua_pushstring(L, "\n");
    lua_pushstring(L, more);
    free(more);
    lua_concat(L, 3);
  }
  if (interactive) add_history(lua_tostring(L, -2));
  lua_remove(L, -2);
  return status;
}

static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  lua_getglobal(L, "print");
  lua_insert(L, 1);
  if (lua_pcall(L, n, 0, 0) != 0) report(L, 1);
}

/* Tab completion: globals, and after `a.b.` or `a:` the keys of the table
 * (or of its metatable's __index table). */
static char **completions;
static int ncompletions;

static void add_completion(const char *prefix, const char *key) {
  completions = realloc(completions, sizeof(char *) * (size_t)(ncompletions + 2));
  size_t n = strlen(prefix) + strlen(key) + 1;
  completions[ncompletions] = malloc(n);
  snprintf(completions[ncompletions++], n, "%s%s", prefix, key);
  completions[ncompletions] = NULL;
}

static void collect_keys(lua_State *L, int idx, const char *prefix, const char *stem) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      if (strncmp(k, stem, strlen(stem)) == 0 && k[0] != '_') add_completion(prefix, k);
    }
    lua_pop(L, 1);
  }
}

static char *completion_entry(const char *text, int state) {
  static int i;
  if (state == 0) i = 0;
  return i < ncompletions ? strdup(completions[i++]) : NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start, (void)end;
  lua_State *L = globalL;
  for (int i = 0; i < ncompletions; i++) free(completions[i]);
  ncompletions = 0;
  const char *sep = strpbrk(text, ".:") ? text + strcspn(text, ".:") : NULL;
  const char *last = text;
  for (const char *p = text; *p; p++)
    if (*p == '.' || *p == ':') last = p + 1;
  int top = lua_gettop(L);
  lua_pushvalue(L, LUA_GLOBALSINDEX);
  if (sep) { /* walk a.b.c */
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)(last - text), text);
    char *save, *tok = strtok_r(path, ".:", &save);
    while (tok && lua_istable(L, -1)) {
      lua_getfield(L, -1, tok);
      lua_remove(L, -2);
      tok = strtok_r(NULL, ".:", &save);
    }
  }
  char prefix[512];
  snprintf(prefix, sizeof prefix, "%.*s", (int)(last - text), text);
  if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), prefix, last);
  if (lua_getmetatable(L, -1)) {
    lua_getfield(L, -1, "__index");
    if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), prefix, last);
  }
  lua_settop(L, top);
  rl_attempted_completion_over = 1;
  return ncompletions ? rl_completion_matches(text, completion_entry) : NULL;
}

static void repl(lua_State *L) {
  interactive = isatty(0);
  char history[4096] = "";
  const char *home = getenv("HOME");
  if (interactive) {
    if (home) snprintf(history, sizeof history, "%s/.fastlua_history", home);
    if (*history) read_history(history);
    rl_attempted_completion_function = complete;
    rl_basic_word_break_characters = " \t\n\"'><=;+-*/%^~#{}()[],";
    printf("fastc %s (%s) — fc is loaded; Ctrl-D exits\n", fc_version(), LUAJIT_VERSION);
  }
  globalL = L;
  int status;
  while ((status = load_statement(L)) != -1) {
    if (status == 0) status = docall(L, 0, LUA_MULTRET);
    if (status == 0) print_results(L);
    else report(L, status);
    lua_settop(L, 0);
  }
  if (interactive) {
    putchar('\n');
    if (*history) write_history(history);
  }
}

/* The REPL's convenience global `fc`; scripts require it themselves. */
static void preload_fc(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "fastc");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "%s: warning: require 'fastc' failed: %s\n", progname, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  lua_setglobal(L, "fc");
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] [script [args]]\n"
          "  -e code    run code (may repeat)\n"
          "  -m module  run require(module) with the remaining args in `arg`\n"
          "  -i         enter the REPL after the script or -e code\n"
          "  -v         print the version\n"
          "  -          run standard input\n"
          "  (none)     the REPL on a terminal, otherwise run standard input\n",
          progname);
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "%s: cannot create the Lua state\n", progname);
    return 1;
  }
  luaL_openlibs(L);
  set_paths(L);
  int status = 0, want_repl = 0, ran = 0, i = 1;
  for (; i < argc && status == 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-e") == 0 && i + 1 < argc) {
      set_arg(L, argv, argc, i + 1);
      status = run_string(L, argv[++i], "=(command line)");
      ran = 1;
    } else if (strcmp(a, "-i") == 0) {
      want_repl = 1;
    } else if (strcmp(a, "-v") == 0) {
      printf("fastc %s (%s)\n", fc_version(), LUAJIT_VERSION);
      ran = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      ran = 1;
    } else if (strcmp(a, "-m") == 0 && i + 1 < argc) {
      status = run_module(L, argv, argc, i + 1);
      ran = 1;
      break;
    } else if (a[0] == '-' && a[1] != 0) {
      fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
      usage(stderr);
      status = 1;
    } else {
      status = run_script(L, argv, argc, i);
      ran = 1;
      break;
    }
  }
  if (status == 0 && (want_repl || !ran)) {
    if (want_repl || isatty(0)) {
      preload_fc(L);
      repl(L);
    } else {
      char *dash[] = {argv[0], "-"};
      status = run_script(L, dash, 2, 1);
    }
  }
  lua_close(L);
  return status ? 1 : 0;
}
