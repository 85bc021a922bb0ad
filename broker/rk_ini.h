/*
 * rk_ini - the one reader of renkei's INI files.
 *
 * The broker's --config file (rk_config) and its ACL file (rk_acl) are both
 * read line by line through rk_ini_next(), with no options, so a line means
 * the same in either file and however the broker was started. What the
 * sections and keys mean is the caller's business; this module only says
 * what the lines are. deploy/man/renkei.conf.5 (FILE SYNTAX) gives the same
 * rules to users:
 *
 *   - The file is UTF-8. A UTF-8 byte order mark at its start is skipped.
 *     A line ends with LF or CR LF; the last line may lack it.
 *   - A line has at most RK_INI_LINE_MAX bytes, not counting its line end
 *     (nor the byte order mark).
 *   - Blanks are spaces and tabs; blanks around a line, a key and a value
 *     are ignored. Any other control character (a NUL, a CR inside a line,
 *     a form feed...) is an error.
 *   - Blank lines are skipped, and so are comments: lines whose first
 *     non-blank is # or ;. On any other line a # or ; after a blank starts
 *     a comment running to the end of the line; a # or ; right after a
 *     non-blank is text (Z85 keys hold such characters).
 *   - `[NAME]` starts section NAME, taken exactly as written between the
 *     brackets, which must hold something; only blanks and a comment may
 *     follow the `]`.
 *   - Any other line is `KEY = VALUE`: the key is the text before the first
 *     '=' (or ':', which libinih also read that way), the value the rest,
 *     possibly empty. Quotes are ordinary characters.
 *   - No line continues another: an indented line is a line of its own, so
 *     an indented word without '=' is an error, not more of a value above.
 *   - Sections and keys are passed on in file order; a repeated section or
 *     key is reported again (the caller decides whether that is allowed).
 *
 * Every problem is an error naming the file and line, never a silently
 * skipped, truncated or split line.
 *
 * Errors follow proto/rk_err.h: RK_OK, an errno value, or RK_EFORMAT; a
 * sentence "FILE:LINE: what is wrong[; what to do]" (or "FILE: ..." when
 * no line is concerned) goes into the caller's `why` buffer, truncated to
 * fit. `why` may be NULL when why_len is 0.
 *
 * Thread-safety: an rk_ini is used by one thread at a time; separate ones
 * may be used at once from different threads (there is no global state).
 */
#ifndef RK_INI_H
#define RK_INI_H

#include <stddef.h>

/* Longest line accepted, in bytes, without its line end. */
#define RK_INI_LINE_MAX 4093

/* A `why` this long holds any message whole, with a path up to 4096 bytes. */
#define RK_INI_WHY_MAX (4096 + 600)

struct rk_ini;

enum rk_ini_kind {
    RK_INI_SECTION = 1,  /* a [NAME] line */
    RK_INI_KEY,          /* a KEY = VALUE line */
};

/* One line with content, as rk_ini_next() found it. The strings point
 * into the rk_ini and stay valid until the next rk_ini_next() or
 * rk_ini_close() on it. */
struct rk_ini_entry {
    enum rk_ini_kind kind;
    int line;             /* 1-based */
    const char *section;  /* the section's name; "" before the first header */
    const char *name;     /* RK_INI_KEY: the key; RK_INI_SECTION: NULL */
    const char *value;    /* RK_INI_KEY: the value, maybe ""; else NULL */
};

/* Opens `path` for reading. On RK_OK, *out is a reader the caller frees
 * with rk_ini_close(). Otherwise *out is NULL and the result is the errno
 * value of the failure (ENOENT, EACCES, ENOMEM...), with
 * "PATH: cannot read: REASON" in `why`. `path` is copied. */
int rk_ini_open(const char *path, struct rk_ini **out, char *why, size_t why_len);

/* Reads up to the next section header or key line, skipping comments and
 * blank lines, and describes it in *e. Returns
 *   RK_OK        *e is that line;
 *   RK_EOF       the file has no more lines (not a failure);
 *   RK_EFORMAT   line e->line breaks a rule above; `why` says which. The
 *                line is consumed whole, so the next call goes on with the
 *                line after it: a caller may report every bad line, or stop
 *                at the first. A bad section header leaves the section
 *                unchanged;
 *   an errno     reading failed ("PATH: cannot read: ..."); every later
 *                call returns the same.
 * e->line is set in each case but the errno one. */
int rk_ini_next(struct rk_ini *ini, struct rk_ini_entry *e, char *why, size_t why_len);

/* The path given to rk_ini_open(), for the caller's own messages about a
 * line ("PATH:LINE: key: reason"). Valid until rk_ini_close(). */
const char *rk_ini_path(const struct rk_ini *ini);

/* Closes the file, frees the reader and sets *ini to NULL. Safe with
 * *ini == NULL. */
void rk_ini_close(struct rk_ini **ini);

#endif
