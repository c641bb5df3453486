// memcoop-guestd's in-guest test: a JVM that held MiB of heap and let go
// of it (garbage a full GC reclaims and G1 then uncommits), then idles.
public class Garbage {
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        int mib = Integer.parseInt(args[0]);
        java.util.List<byte[]> held = new java.util.ArrayList<>();
        for (int i = 0; i < mib; i++) {
            byte[] b = new byte[1 << 20];
            for (int j = 0; j < b.length; j += 4096)
                b[j] = (byte) j;
            held.add(b);
        }
        sink = held;
        held = null;
        sink = null;
        System.out.println("GARBAGE-READY " + mib);
        System.out.flush();
        while (true)
            Thread.sleep(1000);
    }
}
