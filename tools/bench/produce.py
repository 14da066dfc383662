"""Produce a directory tree to a topic the way OpenMSIStream's uploader does (for `deno task bench`).

Usage (with the venv's python, LOCAL_KAFKA_BROKER_BOOTSTRAP_SERVERS set):

    python tools/bench/produce.py ROOT TOPIC CHUNK_SIZE [N_THREADS]

It is DataFileUploadDirectory --upload_existing without the directory watcher and its registry
CSVs: OpenMSIStream 1.8.8's own classes, unchanged, with its shipped `local_broker_test` config
(librdkafka through confluent-kafka's SerializingProducer, `batch.size = 2000000`,
`linger.ms = 100`, `compression.type = lz4`, DataFileChunkSerializer):

- every file under ROOT becomes an UploadDataFile with ROOT as its root directory (so its
  subdirectory goes into the chunks), chunked at CHUNK_SIZE bytes;
- its chunks go through one bounded queue (500 MB of chunks, the uploader's default) to
  N_THREADS producers (default 2, the uploader's default), each running the uploader's own
  `produce_from_queue_looped`; every chunk is its own message with the uploader's key
  (`<subdir>_<file>_<i>_of_<n>`) and librdkafka's default partitioner;
- at the end every producer is flushed and closed.

Prints progress lines, then `DONE files=F chunks=C delivered=D failed=X seconds=S`; exits 0 only
if every chunk was acknowledged by the broker.
"""

import logging
import pathlib
import queue
import sys
import threading
import time

from openmsitoolbox.logging import OpenMSILogger
from openmsistream.utilities.config import RUN_CONST
from openmsistream.kafka_wrapper import ConsumerAndProducerGroup
from openmsistream.data_file_io.entity.upload_data_file import UploadDataFile


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(argv[1]).resolve()
    topic = argv[2]
    chunk_size = int(argv[3])
    n_threads = int(argv[4]) if len(argv) == 5 else RUN_CONST.N_DEFAULT_UPLOAD_THREADS
    config = pathlib.Path(RUN_CONST.CONFIG_FILE_DIR) / "local_broker_test.config"
    logger = OpenMSILogger("BenchProduce", logging.WARNING)

    files = sorted(p for p in root.rglob("*") if p.is_file())
    started = time.monotonic()
    lock = threading.Lock()
    counts = {"enqueued_files": 0, "chunks": 0, "delivered": 0, "failed": 0}

    def on_delivery(err, msg, prodid, **_kwargs):
        if err is None and msg.error() is not None:
            err = msg.error()
        with lock:
            if err is None:
                counts["delivered"] += 1
            else:
                counts["failed"] += 1
                if counts["failed"] <= 5:
                    print(f"delivery failed (producer {prodid}): {err}", flush=True)

    # The uploader's bounded queue: DEFAULT_MAX_UPLOAD_QUEUE_MEGABYTES of chunks.
    upload_queue = queue.Queue(
        int(1000000 * RUN_CONST.DEFAULT_MAX_UPLOAD_QUEUE_MEGABYTES / chunk_size)
    )
    group = ConsumerAndProducerGroup(config, logger=logger)
    producers = [group.get_new_producer() for _ in range(n_threads)]
    threads = []
    for producer in producers:
        thread = threading.Thread(
            target=producer.produce_from_queue_looped,
            args=(upload_queue, topic),
            kwargs={"callback": on_delivery},
        )
        thread.start()
        threads.append(thread)

    stop_progress = threading.Event()

    def progress():
        while not stop_progress.wait(2.0):
            with lock:
                print(
                    f"produced {counts['delivered']} of {counts['chunks']} chunks enqueued so far "
                    f"({counts['enqueued_files']}/{len(files)} files enqueued, "
                    f"{time.monotonic() - started:.0f} s)",
                    flush=True,
                )

    reporter = threading.Thread(target=progress, daemon=True)
    reporter.start()

    for path in files:
        datafile = UploadDataFile(path, rootdir=root, logger=logger)
        datafile.add_chunks_to_upload(chunk_size=chunk_size)
        with lock:
            counts["chunks"] += len(datafile.chunks_to_upload)
        datafile.enqueue_chunks_for_upload(upload_queue, chunk_size=chunk_size)
        with lock:
            counts["enqueued_files"] += 1
    for _ in threads:
        upload_queue.put(None)
    for thread in threads:
        thread.join()
    for producer in producers:
        producer.flush(timeout=-1)
        producer.close()
    group.close()
    stop_progress.set()
    seconds = time.monotonic() - started
    print(
        f"DONE files={len(files)} chunks={counts['chunks']} delivered={counts['delivered']} "
        f"failed={counts['failed']} seconds={seconds:.1f}",
        flush=True,
    )
    ok = counts["failed"] == 0 and counts["delivered"] == counts["chunks"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
