#include "rk_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int rk_keys_valid(const char *z85)
{
    unsigned char bin[32];
    return strlen(z85) == RK_KEY_Z85_LEN && zmq_z85_decode(bin, z85) != NULL;
}

int rk_keys_read(const char *path, char out[RK_KEY_Z85_LEN + 1], char *why, size_t why_len)
{
    char buf[RK_KEY_Z85_LEN + 3];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n > RK_KEY_Z85_LEN && buf[RK_KEY_Z85_LEN] == '\n')
        buf[RK_KEY_Z85_LEN] = '\0';
    if (strlen(buf) != RK_KEY_Z85_LEN || !rk_keys_valid(buf)) {
        snprintf(why, why_len, "%s: not a key file (want 40 Z85 characters and a newline, "
                 "as renkei-keys writes)", path);
        return -1;
    }
    memcpy(out, buf, RK_KEY_Z85_LEN + 1);
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* The public key in BASE.pub beside BASE.key differs from the one derived
 * from the secret: 1; no such file, or it matches: 0. */
static int sibling_mismatch(const char *path, const char *secret, char *pub_path, size_t len)
{
    char want[RK_KEY_Z85_LEN + 1], have[RK_KEY_Z85_LEN + 1], why[16];
    size_t n = strlen(path);
    if (!ends_with(path, ".key") || n + 1 > len)
        return 0;
    memcpy(pub_path, path, n - 4);
    strcpy(pub_path + n - 4, ".pub");
    if (rk_keys_read(pub_path, have, why, sizeof why) != 0 || rk_keys_public_of(secret, want) != 0)
        return 0;
    return strcmp(want, have) != 0;
}

int rk_keys_read_secret(const char *path, char out[RK_KEY_Z85_LEN + 1], char *why,
                        size_t why_len)
{
    struct stat st;
    char pub_path[4096];
    if (ends_with(path, ".pub")) {
        snprintf(why, why_len, "%s: a public key file (.pub); give the secret key, the .key "
                 "file renkei-keys wrote beside it", path);
        return -1;
    }
    if (rk_keys_read(path, out, why, why_len) != 0)
        return -1;
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH)) {
        snprintf(why, why_len, "%s: readable by every user (mode %04o), so a public key or a "
                 "secret that is no longer one; a secret key file is 0600, as renkei-keys "
                 "writes it (chmod 600 %s if it is the secret key)", path,
                 (unsigned)(st.st_mode & 07777), path);
        memset(out, 0, RK_KEY_Z85_LEN + 1);
        return -1;
    }
    if (sibling_mismatch(path, out, pub_path, sizeof pub_path)) {
        snprintf(why, why_len, "%s: its public key is not the one in %s: not the secret key "
                 "of that pair", path, pub_path);
        memset(out, 0, RK_KEY_Z85_LEN + 1);
        return -1;
    }
    return 0;
}

int rk_keys_resolve(const char *arg, char out[RK_KEY_Z85_LEN + 1], char *why, size_t why_len)
{
    if (rk_keys_valid(arg)) {
        memcpy(out, arg, RK_KEY_Z85_LEN + 1);
        return 0;
    }
    return rk_keys_read(arg, out, why, why_len);
}

int rk_keys_public_of(const char *secret, char out[RK_KEY_Z85_LEN + 1])
{
    if (!rk_keys_valid(secret))
        return -1;
    return zmq_curve_public(out, secret) == 0 ? 0 : -1;
}

static int write_file(const char *path, const char *key, mode_t mode, char *why, size_t why_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    char line[RK_KEY_Z85_LEN + 2];
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (keys are never overwritten; remove it first)" : "");
        return -1;
    }
    snprintf(line, sizeof line, "%s\n", key);
    /* open's mode is masked by the umask; a secret must be 0600 whatever it is */
    if (write(fd, line, RK_KEY_Z85_LEN + 1) != RK_KEY_Z85_LEN + 1 || fchmod(fd, mode) != 0 ||
        fsync(fd) != 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return close(fd);
}

int rk_keys_create(const char *dir, const char *name, char public_out[RK_KEY_Z85_LEN + 1],
                   char *why, size_t why_len)
{
    char secret[RK_KEY_Z85_LEN + 1], path_key[4096], path_pub[4096];
    if (zmq_curve_keypair(public_out, secret) != 0) {
        snprintf(why, why_len, "cannot make a key: libzmq was built without CURVE");
        return -1;
    }
    snprintf(path_key, sizeof path_key, "%s/%s.key", dir, name);
    snprintf(path_pub, sizeof path_pub, "%s/%s.pub", dir, name);
    if (access(path_pub, F_OK) == 0) {
        snprintf(why, why_len, "%s: exists (keys are never overwritten; remove it first)", path_pub);
        return -1;
    }
    int rc = write_file(path_key, secret, 0600, why, why_len);
    if (rc == 0 && (rc = write_file(path_pub, public_out, 0644, why, why_len)) != 0)
        unlink(path_key);
    memset(secret, 0, sizeof secret);
    return rc;
}
