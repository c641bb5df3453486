// memcoop-guestd's in-guest test: a JVM that held MiB of heap and let go
// of it (garbage a full GC reclaims and G1 then uncommits), keeping LIVE
// MiB of it reachable, then idles.  With the live part, G1's default heap
// free ratios (40/70) keep live / 30% committed after a full GC: the
// adapter must lower them for its GC.run to get the garbage's pages back.
// Once /tmp/garbage-drop exists the live part becomes garbage too.
//
// args: GARBAGE_MIB [LIVE_MIB]
public class Garbage {
    static volatile Object sink;
    static Object live;

    public static void main(String[] args) throws Exception {
        int mib = Integer.parseInt(args[0]);
        int liveMib = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        java.util.List<byte[]> held = new java.util.ArrayList<>();
        java.util.List<byte[]> kept = new java.util.ArrayList<>();
        // 256 KiB arrays: below G1's humongous size (half a region), so a
        // MiB of garbage takes a MiB of heap
        for (int i = 0; i < (mib + liveMib) * 4; i++) {
            byte[] b = new byte[1 << 18];
            for (int j = 0; j < b.length; j += 4096)
                b[j] = (byte) j;
            (i % (mib + liveMib) < liveMib ? kept : held).add(b);
            if (i % 128 == 127)
                System.out.println("GARBAGE-MIB " + (i + 1) / 4);
        }
        live = kept;
        kept = null;            // the static field alone holds it now
        sink = held;
        held = null;
        sink = null;
        System.out.println("GARBAGE-READY " + mib + " live " + liveMib);
        System.out.flush();
        java.io.File drop = new java.io.File("/tmp/garbage-drop");
        while (true) {
            Thread.sleep(500);
            if (live != null && drop.exists()) {
                live = null;
                System.out.println("GARBAGE-DROPPED " + liveMib);
                System.out.flush();
            }
        }
    }
}
