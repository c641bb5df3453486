// A JVM service for the apps benchmark and the demo: an LRU cache of byte
// arrays (LinkedHashMap in access order) serving a uniform key space larger
// than the cache, from worker threads; a miss loads the value and puts it.
// At start a batch job holds BATCH MiB of temporaries and drops them: the
// heap stays committed at that peak afterwards, as a service's heap does.
// Once a second it prints a SAMPLE line (guest uptime, its own RSS, the
// cache's totals), the same fields as the lab's Redis sampler.
//
// args: CACHE_MIB KEYSPACE_PERCENT BATCH_MIB VALUE_BYTES THREADS
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;

public class CacheService {
    static final AtomicLong hits = new AtomicLong(), misses = new AtomicLong(),
        evicted = new AtomicLong();

    static String field(String file, String name) throws Exception {
        for (String line : Files.readAllLines(Path.of(file))) {
            if (line.startsWith(name)) {
                return line.substring(name.length()).trim().split("\\s+")[0];
            }
        }
        return "0";
    }

    public static void main(String[] args) throws Exception {
        long cacheMiB = Long.parseLong(args[0]);
        int keyPct = Integer.parseInt(args[1]);
        int batchMiB = Integer.parseInt(args[2]);
        int value = Integer.parseInt(args[3]);
        int threads = Integer.parseInt(args[4]);
        final int capacity = (int) (cacheMiB * 1048576 / (value + 64));
        final int keys = (int) ((long) capacity * keyPct / 100);
        final Map<Integer, byte[]> cache = new LinkedHashMap<>(capacity * 2, 0.75f, true) {
            protected boolean removeEldestEntry(Map.Entry<Integer, byte[]> e) {
                if (size() > capacity) {
                    evicted.incrementAndGet();
                    return true;
                }
                return false;
            }
        };
        long t0 = System.nanoTime();
        for (int k = 0; k < capacity; k++) {
            byte[] v = new byte[value];
            v[0] = (byte) k;
            cache.put(k, v);
        }
        byte[][] batch = new byte[batchMiB * 8][];
        for (int i = 0; i < batch.length; i++) {
            batch[i] = new byte[131072 - 64];     // below G1's humongous size
            batch[i][4096] = 1;
        }
        long sum = 0;
        for (byte[] b : batch) {
            sum += b[4096];
        }
        batch = null;
        evicted.set(0);
        System.out.println("FILLED keys=" + capacity + " keyspace=" + keys + " batch=" + sum +
                           " secs=" + (System.nanoTime() - t0) / 1000000000.0);
        for (int t = 0; t < threads; t++) {
            Thread w = new Thread(() -> {
                ThreadLocalRandom r = ThreadLocalRandom.current();
                while (true) {
                    int k = r.nextInt(keys);
                    byte[] v;
                    synchronized (cache) {
                        v = cache.get(k);
                    }
                    if (v != null && v[0] == (byte) k) {
                        hits.incrementAndGet();
                        continue;
                    }
                    misses.incrementAndGet();
                    v = new byte[value];
                    v[0] = (byte) k;
                    synchronized (cache) {
                        cache.put(k, v);
                    }
                }
            });
            w.setDaemon(true);
            w.start();
        }
        while (true) {
            Thread.sleep(1000);
            int n;
            synchronized (cache) {
                n = cache.size();
            }
            Runtime rt = Runtime.getRuntime();
            String up = Files.readString(Path.of("/proc/uptime")).split(" ")[0];
            System.out.println("SAMPLE t=" + up +
                               " rss_kib=" + field("/proc/self/status", "VmRSS:") +
                               " avail_kib=" + field("/proc/meminfo", "MemAvailable:") +
                               " keys=" + n + " ops=" + (hits.get() + misses.get()) +
                               " hits=" + hits.get() + " misses=" + misses.get() +
                               " evicted=" + evicted.get() +
                               " heap_used_kib=" + (rt.totalMemory() - rt.freeMemory()) / 1024 +
                               " heap_committed_kib=" + rt.totalMemory() / 1024);
        }
    }
}
