import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

/**
 * A Curator service-discovery consumer driven line by line, for registrar's interop tests.
 *
 * <p>Usage: {@code java CuratorProbe <connectString>}. Reads one command per line on stdin and answers each with
 * one JSON line on stdout (logs go to stderr):
 *
 * <ul>
 *   <li>{@code query <type> <base> <name>}: {@code ServiceDiscovery.queryForInstances(name)}
 *   <li>{@code cache <type> <base> <name>}: the instances of a {@code ServiceCache} for name (started on first use)
 *   <li>{@code register <type> <base> <name> <id> <port>}: register an instance the way an application would
 * </ul>
 *
 * <p>{@code type} is the payload type the consumer is built with: {@code map} ({@code Map}, a generic Curator
 * client) or {@code spring} (Spring Cloud Zookeeper's {@code ZookeeperInstance}). The Spring class is loaded by name
 * only when asked for, so a probe started without it on the classpath is a generic Curator client that has never
 * heard of Spring, as in a real application. Every discovery uses Curator's own {@code JsonInstanceSerializer}. Answers: {@code {"ok":true,"instances":[...]}} or
 * {@code {"ok":false,"error":"<exception class>","message":"..."}}. End of input closes everything and exits.
 */
public final class CuratorProbe {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final CuratorFramework client;
  private final Map<String, ServiceDiscovery<?>> discoveries = new HashMap<>();
  private final Map<String, JsonInstanceSerializer<?>> serializers = new HashMap<>();
  private final Map<String, ServiceCache<?>> caches = new HashMap<>();

  private CuratorProbe(String connectString) throws InterruptedException {
    client = CuratorFrameworkFactory.newClient(connectString, 10_000, 5_000, new RetryOneTime(200));
    client.start();
    client.blockUntilConnected();
  }

  private static final String SPRING_PAYLOAD =
      "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance";

  private static Class<?> payloadType(String type) throws ClassNotFoundException {
    switch (type) {
      case "map":
        return Map.class;
      case "spring":
        return Class.forName(SPRING_PAYLOAD);
      default:
        throw new IllegalArgumentException("unknown payload type " + type);
    }
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private ServiceDiscovery<Object> discovery(String type, String base) throws Exception {
    String key = type + " " + base;
    ServiceDiscovery<?> found = discoveries.get(key);
    if (found == null) {
      Class payload = payloadType(type);
      JsonInstanceSerializer serializer = new JsonInstanceSerializer(payload);
      found =
          ServiceDiscoveryBuilder.builder(payload)
              .client(client)
              .basePath(base)
              .serializer(serializer)
              .watchInstances(false)
              .build();
      found.start();
      discoveries.put(key, found);
      serializers.put(key, serializer);
    }
    return (ServiceDiscovery<Object>) found;
  }

  @SuppressWarnings("unchecked")
  private ServiceCache<Object> cache(String type, String base, String name) throws Exception {
    String key = type + " " + base + " " + name;
    ServiceCache<?> found = caches.get(key);
    if (found == null) {
      found = discovery(type, base).serviceCacheBuilder().name(name).build();
      found.start();
      caches.put(key, found);
    }
    return (ServiceCache<Object>) found;
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private ObjectNode instances(String type, String base, Collection<ServiceInstance<Object>> found)
      throws Exception {
    JsonInstanceSerializer serializer = serializers.get(type + " " + base);
    List<ServiceInstance<Object>> sorted = new ArrayList<>(found);
    sorted.sort(Comparator.comparing(ServiceInstance::getId));
    ObjectNode answer = JSON.createObjectNode().put("ok", true);
    ArrayNode list = answer.putArray("instances");
    for (ServiceInstance<Object> instance : sorted) {
      Object payload = instance.getPayload();
      ObjectNode item = list.addObject();
      item.put("id", instance.getId());
      item.put("name", instance.getName());
      item.put("address", instance.getAddress());
      item.putPOJO("port", instance.getPort());
      item.putPOJO("sslPort", instance.getSslPort());
      item.put("serviceType", String.valueOf(instance.getServiceType()));
      item.put("registrationTimeUTC", instance.getRegistrationTimeUTC());
      item.put("enabled", instance.isEnabled());
      item.put("payloadClass", payload == null ? null : payload.getClass().getName());
      item.set("payload", JSON.valueToTree(payload));
      // What Curator itself would store for this instance: compared with registrar's bytes.
      item.put("serialized", new String(serializer.serialize(instance), StandardCharsets.UTF_8));
    }
    return answer;
  }

  private ObjectNode run(String[] args) throws Exception {
    String command = args[0];
    switch (command) {
      case "query":
        return instances(args[1], args[2], discovery(args[1], args[2]).queryForInstances(args[3]));
      case "cache":
        return instances(args[1], args[2], cache(args[1], args[2], args[3]).getInstances());
      case "register":
        {
          String type = args[1];
          String name = args[3];
          String id = args[4];
          Map<String, String> metadata = new LinkedHashMap<>();
          metadata.put("origin", "curator");
          Object payload =
              type.equals("spring")
                  ? payloadType(type)
                      .getConstructor(String.class, String.class, Map.class)
                      .newInstance(id, name, metadata)
                  : metadata;
          discovery(type, args[2])
              .registerService(
                  ServiceInstance.builder()
                      .name(name)
                      .id(id)
                      .address("127.0.0.1")
                      .port(Integer.parseInt(args[5]))
                      .payload(payload)
                      .build());
          return JSON.createObjectNode().put("ok", true);
        }
      default:
        throw new IllegalArgumentException("unknown command " + command);
    }
  }

  public static void main(String[] argv) throws Exception {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    CuratorProbe probe = new CuratorProbe(argv[0]);
    out.println(JSON.createObjectNode().put("ok", true).put("ready", true));
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      ObjectNode answer;
      try {
        answer = probe.run(line.trim().split(" "));
      } catch (Exception e) {
        String message = String.valueOf(e.getMessage()).split("\n", 2)[0];
        answer = JSON.createObjectNode().put("ok", false).put("error", e.getClass().getName());
        answer.put("message", message);
      }
      out.println(JSON.writeValueAsString(answer));
    }
    for (ServiceCache<?> cache : probe.caches.values()) cache.close();
    for (ServiceDiscovery<?> discovery : probe.discoveries.values()) discovery.close();
    probe.client.close();
  }
}
