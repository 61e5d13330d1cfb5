/* csv.c — a CSV file read whole into columns (for from_csv and ColReader).
 *
 * One pass splits the file into fields (RFC 4180: quoted fields may hold the
 * separator, newlines and "" for a quote; CRLF or LF line ends); fields are
 * unquoted in place in one buffer, so a million-cell file costs one
 * allocation for the text and one array of pointers. A second pass decides
 * per column whether every non-empty field is a number. */
#include "internal.h"
#include <errno.h>
#include <stdlib.h>

struct fc_csv {
  char *text;      /* the file, fields NUL-terminated in place */
  char **cells;    /* rows x cols, row-major */
  double *numbers; /* rows x cols, meaningful for numeric columns */
  bool *numeric;
  char **names;    /* header fields or NULL */
  int64_t rows;
  int cols;
};

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  char eb[128];
  if (!f) FAIL("read_csv: cannot open '%s': %s", path, strerror_r(errno, eb, sizeof eb));
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 65536 + 1 > cap) {
      cap = (len + 65536 + 1) * 2;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf);
        fclose(f);
        FAIL("read_csv: out of memory reading '%s'", path);
      }
      buf = b;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    FAIL("read_csv: cannot read '%s'", path);
  }
  buf[len] = 0;
  *n = len;
  return buf;
}

typedef struct cell_list { char **v; size_t n, cap; } cell_list;

static int push(cell_list *c, char *cell) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 1024;
    char **v = realloc(c->v, cap * sizeof *v);
    if (!v) return -1;
    c->v = v, c->cap = cap;
  }
  c->v[c->n++] = cell;
  return 0;
}

/* Splits text into cells in place. Each row's cell count goes to *row_cols
 * through the callback-free protocol: a NULL cell ends a row. */
static int split(char *text, size_t n, char sep, cell_list *cells, int64_t *bad_line) {
  char *p = text, *end = text + n;
  int64_t line = 1;
  while (p < end) {
    char *out = p, *start = p;
    if (*p == '"') { /* quoted: unescape into place */
      p++;
      for (;;) {
        if (p >= end) {
          *bad_line = line;
          return -1;
        }
        if (*p == '"' && p + 1 < end && p[1] == '"') {
          *out++ = '"', p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          if (*p == '\n') line++;
          *out++ = *p++;
        }
      }
      while (p < end && *p != sep && *p != '\n' && *p != '\r') p++; /* junk after the quote */
    } else {
      while (p < end && *p != sep && *p != '\n' && *p != '\r') p++;
      out = p;
    }
    char stop = p < end ? *p : '\n';
    *out = 0;
    if (push(cells, start) < 0) return -2;
    if (p < end) p++;
    if (stop == '\r' && p < end && *p == '\n') p++;
    if (stop != sep) { /* end of row */
      if (push(cells, NULL) < 0) return -2;
      line++;
    }
  }
  return 0;
}

static bool parse_number(const char *s, double *v) {
  if (!*s) {
    *v = NAN;
    return true;
  }
  char *endp;
  errno = 0;
  *v = strtod(s, &endp);
  while (*endp == ' ' || *endp == '\t') endp++;
  return endp != s && *endp == 0;
}

/* Lays the NULL-separated rows out as a rows x cols table; blank lines are
 * dropped, a row of another width is an error naming it. */
static int to_table(fc_csv *csv, const cell_list *cl, bool header, const char *path) {
  int cols = -1;
  int64_t rows = 0, row_start = 0, line = 0;
  for (size_t i = 0; i < cl->n; i++) {
    if (cl->v[i]) continue;
    line++;
    int64_t width = (int64_t)i - row_start;
    bool blank = width == 1 && cl->v[row_start][0] == 0;
    if (!blank) {
      if (cols < 0) cols = (int)width;
      if (width != cols)
        FAIL_INT("read_csv: '%s' row %lld has %lld fields, expected %d", path, (long long)line,
                 (long long)width, cols);
      rows++;
    }
    row_start = (int64_t)i + 1;
  }
  if (cols < 0) cols = 0;
  if (header && rows > 0) rows--;
  csv->cols = cols, csv->rows = rows;
  csv->cells = malloc(sizeof(char *) * ((size_t)rows * cols + 1));
  csv->numbers = malloc(sizeof(double) * ((size_t)rows * cols + 1));
  csv->numeric = calloc((size_t)cols + 1, sizeof(bool));
  if (header) csv->names = calloc((size_t)cols + 1, sizeof(char *));
  if (!csv->cells || !csv->numbers || !csv->numeric || (header && !csv->names))
    FAIL_INT("read_csv: out of memory");
  int64_t r = header ? -1 : 0;
  row_start = 0;
  for (size_t i = 0; i < cl->n; i++) {
    if (cl->v[i]) continue;
    if (!(i - row_start == 1 && cl->v[row_start][0] == 0)) {
      for (int c = 0; c < cols; c++) {
        if (r < 0) csv->names[c] = cl->v[row_start + c];
        else csv->cells[r * cols + c] = cl->v[row_start + c];
      }
      r++;
    }
    row_start = (int64_t)i + 1;
  }
  return 0;
}

static void find_numeric(fc_csv *csv) {
  for (int c = 0; c < csv->cols; c++) {
    bool numeric = true;
    for (int64_t r = 0; r < csv->rows && numeric; r++)
      numeric = parse_number(csv->cells[r * csv->cols + c], &csv->numbers[r * csv->cols + c]);
    csv->numeric[c] = numeric && csv->rows > 0;
  }
}

fc_csv *fc_csv_read(const char *path, int header, char sep) {
  if (!path) FAIL("read_csv: path is NULL");
  if (sep == '"' || sep == '\n' || sep == '\r' || sep == 0) FAIL("read_csv: bad separator");
  fc_csv *csv = calloc(1, sizeof *csv);
  if (!csv) FAIL("read_csv: out of memory");
  size_t n;
  if (!(csv->text = slurp(path, &n))) {
    free(csv);
    return NULL;
  }
  cell_list cl = {0};
  int64_t bad_line = 0;
  int rc = split(csv->text, n, sep, &cl, &bad_line);
  if (rc == -1) fc_set_error("read_csv: '%s': quoted field opened on line %lld is never closed", path, (long long)bad_line);
  if (rc == -2) fc_set_error("read_csv: out of memory splitting '%s'", path);
  if (rc == 0) rc = to_table(csv, &cl, header != 0, path);
  free(cl.v);
  if (rc < 0) {
    fc_csv_free(csv);
    return NULL;
  }
  find_numeric(csv);
  return csv;
}

int64_t fc_csv_rows(const fc_csv *csv) { return csv ? csv->rows : 0; }
int fc_csv_cols(const fc_csv *csv) { return csv ? csv->cols : 0; }

const char *fc_csv_name(const fc_csv *csv, int col) {
  return csv && csv->names && col >= 0 && col < csv->cols ? csv->names[col] : NULL;
}

int fc_csv_is_numeric(const fc_csv *csv, int col) {
  return csv && col >= 0 && col < csv->cols && csv->numeric[col];
}

const char *fc_csv_string(const fc_csv *csv, int col, int64_t row) {
  if (!csv || col < 0 || col >= csv->cols || row < 0 || row >= csv->rows) return NULL;
  return csv->cells[row * csv->cols + col];
}

double fc_csv_number(const fc_csv *csv, int col, int64_t row) {
  if (!fc_csv_is_numeric(csv, col) || row < 0 || row >= csv->rows) return NAN;
  return csv->numbers[row * csv->cols + col];
}

void fc_csv_free(fc_csv *csv) {
  if (!csv) return;
  free(csv->text);
  free(csv->cells);
  free(csv->numbers);
  free(csv->numeric);
  free(csv->names);
  free(csv);
}
