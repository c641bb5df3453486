// The lab's smallest Java program (apps_smoke.py): proves the guest runs
// the host's OpenJDK through --host-usr, with a class of our own, a heap
// and a collection.
import java.util.HashMap;

public class Hello {
    public static void main(String[] args) {
        HashMap<Integer, Long> squares = new HashMap<>();
        int n = Integer.parseInt(args[0]);
        long sum = 0;
        for (int i = 1; i <= n; i++) {
            squares.put(i, (long) i * i);
        }
        for (long v : squares.values()) {
            sum += v;
        }
        System.out.println("HELLO-JAVA n=" + n + " sum=" + sum + " vm=" +
                           System.getProperty("java.vm.name").replace(' ', '_') +
                           " gc=" + java.lang.management.ManagementFactory
                               .getGarbageCollectorMXBeans().get(0).getName().replace(' ', '_'));
    }
}
