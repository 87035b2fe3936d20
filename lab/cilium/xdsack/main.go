// Command xdsack stands in for Envoy towards the Cilium agent's xDS server, in the lab only.
//
// The lab has no Envoy (it cannot be built here). With an L7 rule, the agent sends Envoy a listener and
// the endpoint's network policy over xDS and waits for Envoy to acknowledge them before it finishes the
// endpoint's regeneration; with nobody to acknowledge, the first L7 policy blocks the agent's policy
// pipeline and no later policy is enforced. xdsack subscribes to every resource type the agent serves, as
// each node the agent waits for (127.0.0.1, Envoy itself, and 127.0.0.2, the node proxylib's Kafka parser
// stands for), and acknowledges each version it receives. It proxies
// nothing: traffic the datapath redirects to a proxy port finds no listener, which is why the harness
// reports such scenarios as not applicable in the lab.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	cilium "github.com/cilium/proxy/go/cilium/api"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secret "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// stream is the common shape of the agent's discovery streams.
type stream interface {
	Send(*discovery.DiscoveryRequest) error
	Recv() (*discovery.DiscoveryResponse, error)
}

type subscription struct {
	typeURL string
	open    func(context.Context, *grpc.ClientConn) (stream, error)
}

func subscriptions() []subscription {
	return []subscription{
		{"type.googleapis.com/envoy.config.listener.v3.Listener", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return listener.NewListenerDiscoveryServiceClient(c).StreamListeners(ctx)
		}},
		{"type.googleapis.com/envoy.config.route.v3.RouteConfiguration", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return route.NewRouteDiscoveryServiceClient(c).StreamRoutes(ctx)
		}},
		{"type.googleapis.com/envoy.config.cluster.v3.Cluster", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return cluster.NewClusterDiscoveryServiceClient(c).StreamClusters(ctx)
		}},
		{"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return endpoint.NewEndpointDiscoveryServiceClient(c).StreamEndpoints(ctx)
		}},
		{"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return secret.NewSecretDiscoveryServiceClient(c).StreamSecrets(ctx)
		}},
		{"type.googleapis.com/cilium.NetworkPolicy", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return cilium.NewNetworkPolicyDiscoveryServiceClient(c).StreamNetworkPolicies(ctx)
		}},
		{"type.googleapis.com/cilium.NetworkPolicyHosts", func(ctx context.Context, c *grpc.ClientConn) (stream, error) {
			return cilium.NewNetworkPolicyHostsDiscoveryServiceClient(c).StreamNetworkPolicyHosts(ctx)
		}},
	}
}

// ackLoop subscribes to one type and acknowledges every response, until the stream or ctx ends.
func ackLoop(ctx context.Context, conn *grpc.ClientConn, node *core.Node, sub subscription) error {
	s, err := sub.open(ctx, conn)
	if err != nil {
		return err
	}
	if err := s.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: sub.typeURL}); err != nil {
		return err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		names := make([]string, 0, len(resp.Resources))
		log.Printf("%s: ack %s version %s (%d resources)", node.Id, sub.typeURL, resp.VersionInfo, len(resp.Resources))
		if err := s.Send(&discovery.DiscoveryRequest{
			Node:          node,
			TypeUrl:       sub.typeURL,
			VersionInfo:   resp.VersionInfo,
			ResponseNonce: resp.Nonce,
			ResourceNames: names,
		}); err != nil {
			return err
		}
	}
}

func main() {
	socket := flag.String("socket", "/var/run/cilium/envoy/sockets/xds.sock", "the agent's xDS socket")
	nodeIPs := flag.String("node-ips", "127.0.0.1,127.0.0.2", "the Envoy node addresses the agent waits for, comma-separated")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var nodes []*core.Node
	for _, ip := range strings.Split(*nodeIPs, ",") {
		nodes = append(nodes, &core.Node{Id: fmt.Sprintf("host~%s~xdsack~localdomain", strings.TrimSpace(ip)), Cluster: "ingress"})
	}
	for ctx.Err() == nil {
		conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Printf("connect %s: %v", *socket, err)
		} else {
			var wg sync.WaitGroup
			sctx, cancel := context.WithCancel(ctx)
			for _, node := range nodes {
				for _, sub := range subscriptions() {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := ackLoop(sctx, conn, node, sub); err != nil && sctx.Err() == nil {
							log.Printf("%s %s: %v", node.Id, sub.typeURL, err)
						}
						// One stream ending means the agent went away: resubscribe all.
						cancel()
					}()
				}
			}
			wg.Wait()
			cancel()
			_ = conn.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
