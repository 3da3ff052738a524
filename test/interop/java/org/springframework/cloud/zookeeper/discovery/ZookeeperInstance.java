package org.springframework.cloud.zookeeper.discovery;

import java.util.HashMap;
import java.util.Map;

/**
 * Test stand-in for Spring Cloud Zookeeper's payload class: the same fully qualified name and the same bean
 * properties (id, name, metadata), so Jackson resolves the "@class" registrar writes in the spring payload mode
 * exactly as it does in a Spring application. Written for registrar's interop tests; no Spring code.
 */
public class ZookeeperInstance {
  private String id;
  private String name;
  private Map<String, String> metadata = new HashMap<>();

  @SuppressWarnings("unused")
  private ZookeeperInstance() {}

  public ZookeeperInstance(String id, String name, Map<String, String> metadata) {
    this.id = id;
    this.name = name;
    this.metadata = metadata;
  }

  public String getId() {
    return id;
  }

  public void setId(String id) {
    this.id = id;
  }

  public String getName() {
    return name;
  }

  public void setName(String name) {
    this.name = name;
  }

  public Map<String, String> getMetadata() {
    return metadata;
  }

  public void setMetadata(Map<String, String> metadata) {
    this.metadata = metadata;
  }
}
