/* rnnd's version, as `rnnd --version` and `GET /v2` report it. */
#ifndef RNN_VERSION_H
#define RNN_VERSION_H

#define RNND_VERSION "0.1.0"

#endif
