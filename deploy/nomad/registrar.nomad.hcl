# registrar on every Nomad client that runs Docker: a system job (one allocation per node), Nomad >= 1.5.
#
#   nomad job run \
#     -var image=registry.example.com/registrar:0.1.0 \
#     -var docker_gid=$(stat -c %g /var/run/docker.sock) \
#     -var registry=consul://127.0.0.1:8500 \
#     deploy/nomad/registrar.nomad.hcl
#
# Host networking: registrar reaches a registry agent on the node's loopback (the usual Consul agent) and serves
# /metrics, /healthz and /readyz on the node's address, port 9105. Each node advertises its published ports on
# its own address and owns its entries under its own Nomad node name. The Docker socket is mounted read-only
# (docker plugin config: volumes { enabled = true }). Checked in `pnpm test` by test/deploy/nomad.test.ts, which
# runs the real CLI on this file's args and env (Nomad itself is not installable there).

variable "image" {
  type        = string
  description = "registrar image the clients can pull (built from the repository's Dockerfile)"
}

variable "docker_gid" {
  type        = string
  description = "group id of /var/run/docker.sock, the same on every client (stat -c %g /var/run/docker.sock)"
}

variable "registry" {
  type        = string
  description = "registry URI: consul://host:port, etcd://host:port/prefix or zk://host:port/base"
  default     = "consul://127.0.0.1:8500"
}

job "registrar" {
  type        = "system"
  datacenters = ["*"]

  # One node at a time; the next only once this one's check passed for 10 s.
  update {
    max_parallel     = 1
    stagger          = "10s"
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "2m"
  }

  group "registrar" {
    network {
      mode = "host"
      port "metrics" {
        static = 9105
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    # Ready: the Docker event stream is connected, the first inventory is done, the registry answered.
    service {
      provider = "nomad"
      name     = "registrar"
      port     = "metrics"
      tags     = ["metrics"]

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "registrar" {
      driver = "docker"

      config {
        image        = var.image
        network_mode = "host"
        args         = ["--deregister-on-exit", var.registry]

        # The image runs as uid 10001: the socket's group lets it read the Docker API, and nothing else is needed.
        group_add       = [var.docker_gid]
        readonly_rootfs = true
        cap_drop        = ["ALL"]
        security_opt    = ["no-new-privileges"]

        mount {
          type     = "bind"
          source   = "/var/run/docker.sock"
          target   = "/var/run/docker.sock"
          readonly = true
        }
      }

      env {
        REGISTRAR_NODE_ID      = "${node.unique.name}"
        REGISTRAR_IP           = "${attr.unique.network.ip-address}"
        REGISTRAR_METRICS_ADDR = "${NOMAD_ADDR_metrics}"
        REGISTRAR_LOG_FORMAT   = "json"
      }

      # SIGTERM: registrar deregisters this node's entries and exits within 10 s.
      kill_signal  = "SIGTERM"
      kill_timeout = "15s"

      # About 60 MiB resident when idle; the rest is headroom for hosts with many containers (memory is a hard
      # limit: past it the task is OOM-killed and restarted).
      resources {
        cpu    = 100
        memory = 256
      }
    }
  }
}
