/* fastlua.c — LuaJIT with fastc built in: scripts, -e, -m, -i and a REPL.
 *
 * The whole of libfastc is linked in and exported (-rdynamic), so the Lua
 * package reaches it through ffi.C with no library to find. package.path
 * gets the lua/ directory next to the executable (the build tree) and the
 * installed one, so `require 'fastc'` works from anywhere.
 *
 * The command line follows the standalone `lua` interpreter (5.3's lua.c):
 * options run in order, the first non-option is the script and everything
 * after it belongs to the script, through `arg` and `...`. */
#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unistd.h>

#include "fastc.h"

#ifndef FASTC_LUA_DIR
#define FASTC_LUA_DIR "/usr/local/share/fastc/lua"
#endif

static const char *progname = "fastlua";
static lua_State *globalL; /* for the SIGINT handler and tab completion */

/* ---- errors and interruption ------------------------------------------ */

/* Prints the message on top of the stack (if any) and pops it. stdout is
 * flushed first so piped output keeps the order the user saw. */
static void report(lua_State *L, int status) {
  if (status == 0) return;
  if (!lua_isnil(L, -1)) {
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
    fflush(stderr);
  }
  lua_pop(L, 1);
}

/* The message handler: appends a traceback; a non-string error object is
 * shown through its __tostring when it has one (a tensor, say). error()
 * with no value stays nil, which exits 1 silently: busted ends so. */
static int traceback(lua_State *L) {
  if (lua_isnoneornil(L, 1)) return 1;
  if (!lua_isstring(L, 1)) {
    if (!luaL_callmeta(L, 1, "__tostring") || !lua_isstring(L, -1))
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_replace(L, 1);
  }
  lua_settop(L, 1);
  lua_getglobal(L, "debug");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "traceback");
  if (!lua_isfunction(L, -1)) { /* the script replaced `debug` */
    lua_settop(L, 1);
    return 1;
  }
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

/* Ctrl-C cannot unwind Lua from a signal handler; it arms a hook instead,
 * which raises "interrupted" at the next call, return or instruction count.
 * A loop running wholly in JIT-compiled code never reaches a hook (LuaJIT
 * runs no hooks in traces), so a second Ctrl-C ends the process. */
static volatile sig_atomic_t interrupt_pending;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  interrupt_pending = 0;
  luaL_error(L, "interrupted");
}

static void on_sigint(int sig) {
  (void)sig;
  if (interrupt_pending) {
    static const char msg[] = "\nfastlua: interrupted twice, exiting\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(130);
  }
  interrupt_pending = 1;
  lua_sethook(globalL, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Calls the function below `narg` arguments with the traceback handler and
 * Ctrl-C armed. */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  globalL = L;
  interrupt_pending = 0;
  signal(SIGINT, on_sigint);
  int status = lua_pcall(L, narg, nres, base);
  signal(SIGINT, SIG_DFL);
  lua_sethook(L, NULL, 0, 0); /* a Ctrl-C that came too late to fire */
  interrupt_pending = 0;
  lua_remove(L, base);
  return status;
}

/* ---- set-up -------------------------------------------------------------- */

/* Prepends FASTC_LUA_PATH, the lua/ dir beside the executable's own dir
 * (build/fastlua -> lua/, the source tree) and the installed Lua dir to
 * package.path. The first is resolved so tracebacks show short paths. */
static void set_paths(lua_State *L) {
  char exe[PATH_MAX], dir[PATH_MAX + 8], lua_dir[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(dir, sizeof dir, "%s/../lua", exe);
  const char *tree = realpath(dir, lua_dir) ? lua_dir : dir;
  const char *extra = getenv("FASTC_LUA_PATH");
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s%s%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?/init.lua;", extra ? extra : "",
                  extra ? ";" : "", tree, tree, FASTC_LUA_DIR, FASTC_LUA_DIR);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* The standard `arg` table: arg[0] the script, arg[1..] its arguments,
 * negative indices the interpreter and its options. Without a script,
 * arg[0] is the interpreter, as in lua 5.3. */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* ---- running code -------------------------------------------------------- */

static int run_string(lua_State *L, const char *code) {
  int status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  if (status == 0) status = docall(L, 0, 0);
  report(L, status);
  return status;
}

/* -l name: the global `name` = require(name). */
static int run_require(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = docall(L, 1, 1);
  if (status == 0) lua_setglobal(L, name);
  report(L, status);
  return status;
}

/* The script gets its arguments as `...` too. "-" is standard input. */
static int run_script(lua_State *L, char **argv, int argc, int script) {
  const char *file = strcmp(argv[script], "-") == 0 ? NULL : argv[script];
  int status = luaL_loadfile(L, file);
  if (status == 0) {
    for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
    status = docall(L, argc - script - 1, 0);
  }
  report(L, status);
  return status;
}

/* -m name: require(name) with `arg` set, like python -m; recipes run so. */
static int run_module(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = docall(L, 1, 0);
  report(L, status);
  return status;
}

/* ---- the REPL: reading chunks ------------------------------------------ */

static int interactive; /* stdin is a terminal: libedit, prompts, history */

/* One line without its newline (malloc'd), or NULL at end of input. Piped
 * input gets no prompts, so its output holds only what the code printed. */
/* Ctrl-C at the prompt drops the line (or the unfinished chunk) instead
 * of ending the session: libedit gives up on the line, and we go on. */
static volatile sig_atomic_t prompt_interrupted;
static void on_prompt_sigint(int sig) { (void)sig, prompt_interrupted = 1; }

static char *read_line(const char *prompt) {
  if (interactive) {
    prompt_interrupted = 0;
    signal(SIGINT, on_prompt_sigint);
    char *line = readline(prompt);
    signal(SIGINT, SIG_DFL);
    if (line || !prompt_interrupted) return line;
    putchar('\n');
    return strdup("");
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) {
    free(line);
    return NULL;
  }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = 0;
  return line;
}

/* Returns its arguments: an expression line is compiled as `return
 * keep(<line>)` rather than `return <line>` so that a call in it is not a
 * tail call, which in LuaJIT would drop the frame `error` reports from. */
static int keep(lua_State *L) { return lua_gettop(L); }

/* A chunk is incomplete when it fails to compile at <eof>: more to come. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  const char *eof = "'<eof>'";
  size_t n = strlen(eof);
  return msg && len >= n && strcmp(msg + len - n, eof) == 0;
}

/* Compiles `code` as an expression (so its values print) or else as a
 * statement; leaves the function or the error message on the stack. A
 * chunk like "x +" is no statement but an unfinished expression, so it
 * reports the expression's <eof> error and the caller reads on. */
static int compile(lua_State *L, const char *code, size_t len) {
  lua_pushfstring(L, "local keep = ...; return keep(%s\n)", code);
  int status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (status == 0) return 0;
  lua_pop(L, 1);
  status = luaL_loadbuffer(L, code, len, "=stdin");
  if (status == 0 || incomplete(L, status)) return status;
  lua_pushfstring(L, "return %s", code);
  int expr = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (!incomplete(L, expr)) {
    lua_pop(L, 1);
    return status;
  }
  lua_remove(L, -2);
  return expr;
}

/* Reads and compiles one chunk, reading more lines while it is incomplete.
 * Returns -1 at end of input, else the compile status with the function or
 * the error message on the stack. `=expr` is the old spelling of `expr`. */
static int read_chunk(lua_State *L) {
  char *line = read_line("> ");
  if (!line) return -1;
  lua_pushstring(L, line[0] == '=' ? line + 1 : line);
  free(line);
  for (;;) {
    size_t len;
    const char *code = lua_tolstring(L, -1, &len);
    int status = compile(L, code, len);
    if (!incomplete(L, status)) {
      if (interactive && len > 0) add_history(code);
      lua_remove(L, -2);
      return status;
    }
    char *more = read_line(">> ");
    if (!more) { /* input ended inside a chunk: report why */
      lua_remove(L, -2);
      return status;
    }
    lua_pop(L, 1);
    if (prompt_interrupted) lua_pop(L, 1), lua_pushliteral(L, ""); /* drop it all */
    else lua_pushfstring(L, "\n%s", more), lua_concat(L, 2);
    free(more);
  }
}

/* Prints every value left on the stack, through the global print (so
 * tensors pretty-print via __tostring). */
static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  lua_getglobal(L, "print");
  lua_insert(L, 1);
  report(L, lua_pcall(L, n, 0, 0));
}

/* ---- the REPL: tab completion -------------------------------------------- */

/* The candidates of the current completion; libedit pulls them one by one. */
static struct {
  char **items;
  int n, cap;
  const char *text; /* what the user typed: "fc.on" */
  size_t prefix_len; /* up to the last '.' or ':': "fc." */
} comp;

static void add_candidate(const char *key) {
  size_t n = comp.prefix_len + strlen(key) + 1;
  for (int i = 0; i < comp.n; i++) /* a key both in an object and its class */
    if (strncmp(comp.items[i] + comp.prefix_len, key, n) == 0) return;
  if (comp.n == comp.cap) {
    comp.cap = comp.cap ? 2 * comp.cap : 64;
    comp.items = realloc(comp.items, sizeof(char *) * (size_t)comp.cap);
  }
  char *s = malloc(n);
  snprintf(s, n, "%.*s%s", (int)comp.prefix_len, comp.text, key);
  comp.items[comp.n++] = s;
}

/* String keys of the table at `idx` that start with `stem`; names starting
 * with '_' only when the stem does (no __index, _G noise by default). */
static void collect_keys(lua_State *L, int idx, const char *stem) {
  size_t n = strlen(stem);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && strncmp(k, stem, n) == 0 && (k[0] != '_' || stem[0] == '_')) add_candidate(k);
    lua_pop(L, 1);
  }
}

/* fc.nn modules keep parameters, buffers and submodules in registry
 * tables reached through an __index function: offer those names too. */
static void collect_registries(lua_State *L, const char *stem) {
  static const char *registries[] = {"_parameters", "_buffers", "_modules"};
  for (int i = 0; i < 3; i++) {
    lua_pushstring(L, registries[i]);
    lua_rawget(L, -2);
    if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), stem);
    lua_pop(L, 1);
  }
}

/* Tensors are cdata, whose metatable Lua cannot reach: their methods come
 * from package.loaded.fastc.Tensor. */
static void collect_tensor_methods(lua_State *L, const char *stem) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "fastc");
  if (!lua_istable(L, -1)) return;
  lua_getfield(L, -1, "is_tensor");
  lua_pushvalue(L, -5);
  lua_call(L, 1, 1);
  int is_tensor = lua_toboolean(L, -1);
  lua_getfield(L, -2, "Tensor");
  if (is_tensor && lua_istable(L, -1)) collect_keys(L, lua_gettop(L), stem);
}

/* The keys of the value at the top, then up its chain of metatables: an
 * __index table is searched next; behind an __index function the methods
 * usually sit in the metatable itself (a class), so that comes next. */
static void collect_fields(lua_State *L, const char *stem) {
  if (lua_istable(L, -1)) collect_registries(L, stem);
  if (lua_type(L, -1) > LUA_TTHREAD) { /* cdata */
    collect_tensor_methods(L, stem);
    return;
  }
  for (int depth = 0; depth < 8; depth++) {
    if (lua_istable(L, -1)) collect_keys(L, lua_gettop(L), stem);
    if (!lua_getmetatable(L, -1)) return;
    lua_getfield(L, -1, "__index");
    if (!lua_istable(L, -1)) lua_pop(L, 1);
  }
}

/* Walks "a.b:c" from the globals (through __index, hence protected) and
 * collects the candidates for what follows the last separator. */
static int find_candidates(lua_State *L) {
  const char *text = comp.text;
  lua_pushvalue(L, LUA_GLOBALSINDEX);
  const char *p = text;
  for (const char *sep; (sep = strpbrk(p, ".:")) != NULL; p = sep + 1) {
    if (lua_isnil(L, -1)) return 0;
    lua_pushlstring(L, p, (size_t)(sep - p));
    lua_gettable(L, -2);
  }
  comp.prefix_len = (size_t)(p - text);
  collect_fields(L, p);
  if (p == text) { /* a statement can start with a keyword too */
    static const char *keywords[] = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                                     "function", "if", "in", "local", "nil", "not", "or", "repeat",
                                     "return", "then", "true", "until", "while", NULL};
    for (const char **k = keywords; *k; k++)
      if (strncmp(*k, p, strlen(p)) == 0) add_candidate(*k);
  }
  return 0;
}

static char *next_candidate(const char *text, int state) {
  static int i;
  (void)text;
  if (state == 0) i = 0;
  return i < comp.n ? strdup(comp.items[i++]) : NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start, (void)end;
  for (int i = 0; i < comp.n; i++) free(comp.items[i]);
  comp.n = 0;
  comp.text = text;
  comp.prefix_len = 0;
  lua_State *L = globalL;
  int top = lua_gettop(L);
  if (lua_cpcall(L, find_candidates, NULL) != 0) comp.n = 0; /* a throwing __index */
  lua_settop(L, top);
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0'; /* so `fc.nn` can go on with `.` */
  return comp.n ? rl_completion_matches(text, next_candidate) : NULL;
}

/* ---- the REPL ---------------------------------------------------------- */

/* ~/.fastlua_history, or "" without a home to keep it in. */
static void history_path(char *buf, size_t size) {
  const char *home = getenv("HOME");
  snprintf(buf, size, "%s%s", home ? home : "", home ? "/.fastlua_history" : "");
}

static void repl(lua_State *L) {
  char history[PATH_MAX] = "";
  if (interactive) {
    history_path(history, sizeof history);
    if (*history) read_history(history); /* a missing or unreadable file is fine */
    stifle_history(1000);
    rl_readline_name = "fastlua";
    rl_attempted_completion_function = complete;
    rl_basic_word_break_characters = " \t\n\"'><=;+-*/%^~#&|{}()[],";
  }
  globalL = L;
  int status;
  while ((status = read_chunk(L)) != -1) {
    if (status == 0) {
      lua_pushcfunction(L, keep);
      status = docall(L, 1, LUA_MULTRET);
    }
    if (status == 0) print_results(L);
    else report(L, status);
    lua_settop(L, 0);
    fflush(stdout); /* piped output keeps pace with the input */
  }
  if (interactive) {
    putchar('\n');
    if (*history) write_history(history);
  }
}

/* The REPL's convenience global `fc`; scripts require it themselves. A
 * broken package must not keep the REPL from starting. */
static int preload_fc(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "fastc");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "?";
    int n = (int)strcspn(msg, "\n"); /* "not found" goes on to list every path tried */
    if (n > 0 && msg[n - 1] == ':') n--;
    fprintf(stderr, "%s: warning: require 'fastc' failed: %.*s (FASTC_LUA_PATH adds Lua dirs)\n",
            progname, n, msg);
    lua_pop(L, 1);
    return 0;
  }
  lua_setglobal(L, "fc");
  return 1;
}

static void start_repl(lua_State *L) {
  interactive = isatty(0);
  int have_fc = preload_fc(L);
  if (interactive)
    printf("fastc %s (%s)%s; Ctrl-D exits\n", fc_version(), LUAJIT_VERSION,
           have_fc ? " - the package is the global `fc`" : "");
  repl(L);
}

/* ---- the command line -------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] [script [args]]\n"
          "  -e code    run code (may repeat)\n"
          "  -l name    require library `name` into the global `name`\n"
          "  -m module  run require(module); the args after it go to `arg`\n"
          "  -i         enter the REPL after the script or -e code\n"
          "  -v         print the version\n"
          "  -h         show this help\n"
          "  --         stop handling options\n"
          "  -          run standard input\n"
          "With no script: the REPL on a terminal, else standard input runs.\n",
          progname);
}

typedef struct {
  int script; /* argv index of the script, module name or "-"; 0: none */
  int module, repl, version, help, ran_code;
} Options;

/* Checks the options up to the script; -e and -l run later, in order. */
static int parse_args(int argc, char **argv, Options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) {
      o->script = i;
      return 0;
    }
    if (strcmp(a, "--") == 0) {
      o->script = i + 1 < argc ? i + 1 : 0;
      return 0;
    }
    if (strcmp(a, "-i") == 0) o->repl = 1;
    else if (strcmp(a, "-v") == 0) o->version = 1;
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) o->help = 1;
    else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0 || strcmp(a, "-m") == 0) {
      if (++i == argc) {
        fprintf(stderr, "%s: '%s' needs an argument\n", progname, a);
        return -1;
      }
      if (a[1] == 'e') o->ran_code = 1;
      if (a[1] == 'm') {
        o->script = i, o->module = 1;
        return 0;
      }
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
      return -1;
    }
  }
  return 0;
}

/* Runs the -e and -l options in their order. */
static int run_options(lua_State *L, char **argv, int end) {
  for (int i = 1; i < end; i++) {
    int status = 0;
    if (strcmp(argv[i], "-e") == 0) status = run_string(L, argv[++i]);
    else if (strcmp(argv[i], "-l") == 0) status = run_require(L, argv[++i]);
    if (status) return status;
  }
  return 0;
}

static int run(lua_State *L, int argc, char **argv, const Options *o) {
  if (o->version) printf("fastc %s (%s)\n", fc_version(), LUAJIT_VERSION);
  set_arg(L, argv, argc, o->script);
  int status = run_options(L, argv, o->script ? o->script : argc);
  if (status) return status;
  if (o->script && o->module) status = run_module(L, argv[o->script]);
  else if (o->script) status = run_script(L, argv, argc, o->script);
  if (status) return status;
  if (o->repl) start_repl(L);
  else if (!o->script && !o->ran_code && !o->version) {
    if (isatty(0)) start_repl(L);
    else {
      char *dash[] = {argv[0], "-"};
      status = run_script(L, dash, 2, 1);
    }
  }
  return status;
}

/* libgomp's default has idle OpenMP threads spin. On a machine where
 * anything else wants the cores, a spinning thread holds a core its
 * partner needs at the next barrier, and training slows several-fold
 * (measured: the benchmark CNN at 690 samples/s against 4830 with passive
 * waiting, with two other busy processes on 2 cores). libgomp reads the
 * policy once, when it is loaded, so fastlua sets it and runs itself again;
 * an OMP_WAIT_POLICY the user set is kept. Hosts that embed libfastc choose
 * for themselves. */
static void prefer_passive_waiting(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv); /* only returns on failure: carry on as we are */
}

int main(int argc, char **argv) {
  prefer_passive_waiting(argv);
  Options o = {0};
  if (parse_args(argc, argv, &o) != 0) {
    usage(stderr);
    return 1;
  }
  if (o.help) {
    usage(stdout);
    return 0;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "%s: cannot create the Lua state\n", progname);
    return 1;
  }
  luaL_openlibs(L);
  set_paths(L);
  int status = run(L, argc, argv, &o);
  fflush(stdout);
  lua_close(L);
  return status ? 1 : 0;
}
