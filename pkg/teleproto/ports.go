package teleproto

// Ports and header keys of the manager's two services, shared by the
// manager, the agents and the laptop's client: declared here only.
const (
	// ManagerPort is where the manager serves laptops (the Manager
	// service), on its pod's loopback: laptops reach it by port-forward.
	ManagerPort = 8081
	// AgentPort is where the manager serves agents (AgentService), on its
	// pod's IP, authenticated by AgentTokenHeader.
	AgentPort = 8082
	// AgentTokenHeader is the gRPC metadata key of the agents' shared
	// token, which the manager checks on every AgentService call.
	AgentTokenHeader = "x-tele-agent-token"
	// AgentServiceName is the Service agents reach the manager through.
	AgentServiceName = "kubectl-tele-manager"
)

// ManagerServerName is the name an agent in namespace ns verifies the
// manager's certificate for (the agents' link is TLS), however it reaches
// the manager: its Service's name, which the manager's serving certificate
// holds.
func ManagerServerName(ns string) string { return AgentServiceName + "." + ns + ".svc" }

// AgentListenPort is where an agent listens for the app port port unless
// its pod takes that port otherwise: the manager chooses each pod's ports
// from there on (two app ports 20000 apart share this one, and an app may
// declare it) and carries them to the agents in AgentRoute.agent_port.
func AgentListenPort(port uint32) uint32 { return 40000 + port%20000 }
