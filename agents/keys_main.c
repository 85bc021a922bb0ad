/* renkei-keys: make CURVE keypairs for the broker and its clients. */
#include "rk_keys.h"
#include "rk_toolopt.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-keys [--dir DIR] NAME\n"
        "       renkei-keys --public SECRET_KEY_FILE\n"
        "Make a CURVE keypair for renkei-broker or one of its clients: DIR/NAME.key\n"
        "holds the secret key (mode 0600; it never leaves the machine that uses it)\n"
        "and DIR/NAME.pub the public key, which goes to the other side: the broker's\n"
        "to every client, a client's into the broker's ACL file. Both are one line of\n"
        "ZeroMQ's Z85 text. The public key is also printed. Existing files are never\n"
        "overwritten.\n"
        "\n"
        "  -d, --dir DIR     where to write the files [.]\n"
        "  -p, --public FILE print the public key of a secret key file and exit\n"
        "  -h, --help        show this help and exit\n"
        "      --version          print the version and exit\n"
        "\n"
        "Example, a new municipality (Sakai city, 271403):\n"
        "  renkei-keys --dir /etc/renkei 271403-sakai\n"
        "  then add its .pub line to the broker's ACL (see deploy/README.md).\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'}, {"public", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, RK_TOOLOPT_VERSION}, {NULL, 0, NULL, 0},
    };
    const char *dir = ".", *secret_file = NULL;
    char key[RK_KEY_Z85_LEN + 1], pub[RK_KEY_Z85_LEN + 1], why[512];
    int c;

    while ((c = getopt_long(argc, argv, "d:p:h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': secret_file = optarg; break;
        case 'h': usage(stdout); return 0;
        case RK_TOOLOPT_VERSION: printf("renkei-keys %s\n", RK_VERSION); return 0;
        default: fprintf(stderr, "Try 'renkei-keys --help'.\n"); return 2;
        }
    }
    if (secret_file) {
        if (rk_keys_read_secret(secret_file, key, why, sizeof why) != 0 ||
            rk_keys_public_of(key, pub) != 0) {
            fprintf(stderr, "renkei-keys: %s\n", why);
            return 1;
        }
        printf("%s\n", pub);
        return 0;
    }
    if (optind != argc - 1 || !argv[optind][0] || strchr(argv[optind], '/')) {
        fprintf(stderr, "renkei-keys: give one NAME (no '/'; use --dir for the directory); "
                "try --help\n");
        return 2;
    }
    if (rk_keys_create(dir, argv[optind], pub, why, sizeof why) != 0) {
        fprintf(stderr, "renkei-keys: %s\n", why);
        return 1;
    }
    printf("%s\n", pub);
    fprintf(stderr, "renkei-keys: wrote %s/%s.key (secret, 0600) and %s/%s.pub\n", dir,
            argv[optind], dir, argv[optind]);
    return 0;
}
