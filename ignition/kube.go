package ignition

import (
	"fmt"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_0/types"
	"github.com/undercloud/undercloud/sites"
	"gopkg.in/yaml.v3"
)

// The Kubernetes part of a config is deliberately small: enough for a node
// to start etcd and a kubelet with the right identity and peers. PKI and
// join tokens are not rendered: they are secrets, and a config is served to
// whoever holds a boot token, so they are referenced by path and provisioned
// out of band.
const (
	kubernetesVersion = "v1.31.4"
	etcdDataDir       = "/var/lib/etcd"
	pki               = "/etc/kubernetes/pki"
	manifestsDir      = "/etc/kubernetes/manifests"
	// BootstrapKubeconfigPath is the worker's TLS bootstrap kubeconfig.
	BootstrapKubeconfigPath = "/etc/kubernetes/bootstrap-kubeconfig"
	kubeletKubeconfig       = "/etc/kubernetes/kubelet.conf"
	// ControlPlaneTaint keeps ordinary pods off masters. The kubelet refuses
	// node-role.kubernetes.io/* labels in --node-labels (Kubernetes 1.16+,
	// NodeRestriction), so the role label is ours and the control-plane
	// marking is the taint kubeadm also registers.
	ControlPlaneTaint = "node-role.kubernetes.io/control-plane:NoSchedule"
	// RoleLabel is the node label carrying the machine's role.
	RoleLabel = "undercloud.io/role"
)

// clusterState is etcd's --initial-cluster-state. A re-imaged master must
// never say "new" once the cluster exists: it would start a fresh cluster
// with the same token and members, splitting or wiping the real one.
func clusterState(bootstrapped bool) string {
	if bootstrapped {
		return "existing"
	}
	return "new"
}

// initialCluster lists every master as name=https://ip:2380, in file order
// (the order is part of the etcd bootstrap and must be the same on all).
func initialCluster(s *sites.Site) string {
	var peers []string
	for _, m := range s.Masters() {
		peers = append(peers, fmt.Sprintf("%s=https://%s:2380", m.Name, m.IP))
	}
	return strings.Join(peers, ",")
}

func etcdServers(s *sites.Site) string {
	var urls []string
	for _, m := range s.Masters() {
		urls = append(urls, fmt.Sprintf("https://%s:2379", m.IP))
	}
	return strings.Join(urls, ",")
}

// execStart renders a long command line one flag per line, as people write
// units by hand, so a diff of two versions shows which flag changed.
func execStart(argv ...string) string {
	return "ExecStart=" + strings.Join(argv, " \\\n  ")
}

func master(s *sites.Site, m *sites.Machine, bootstrapped bool) ([]types.File, []types.Unit) {
	ip := m.IP.String()
	etcd := unitFile(
		[]string{"Description=etcd member " + m.Name + " of cluster " + s.Cluster.Name, "Wants=network-online.target", "After=network-online.target"},
		[]string{"Type=notify", "Restart=always", "RestartSec=5",
			execStart("/usr/bin/etcd",
				"--name "+m.Name,
				"--data-dir "+etcdDataDir,
				"--listen-peer-urls https://"+ip+":2380",
				"--initial-advertise-peer-urls https://"+ip+":2380",
				"--listen-client-urls https://"+ip+":2379,https://127.0.0.1:2379",
				"--advertise-client-urls https://"+ip+":2379",
				"--initial-cluster "+initialCluster(s),
				"--initial-cluster-token "+s.Cluster.Name,
				"--initial-cluster-state "+clusterState(bootstrapped),
				"--cert-file "+pki+"/etcd/server.crt",
				"--key-file "+pki+"/etcd/server.key",
				"--trusted-ca-file "+pki+"/etcd/ca.crt",
				"--client-cert-auth",
				"--peer-cert-file "+pki+"/etcd/peer.crt",
				"--peer-key-file "+pki+"/etcd/peer.key",
				"--peer-trusted-ca-file "+pki+"/etcd/ca.crt",
				"--peer-client-cert-auth")},
	)
	kubelet := kubeletUnit(m, "master",
		"--kubeconfig="+kubeletKubeconfig,
		"--pod-manifest-path="+manifestsDir,
		"--register-with-taints="+ControlPlaneTaint)
	files := []types.File{
		// The master's kubelet talks to its own API server, so it can
		// register even while the VIP has no backend yet.
		file(kubeletKubeconfig, 0o600, kubeconfig(s.Cluster.Name, "https://"+ip+":6443", kubeUser{
			ClientCertificate: pki + "/kubelet-client.crt", ClientKey: pki + "/kubelet-client.key"})),
		file(manifestsDir+"/kube-apiserver.yaml", 0o644, apiServerPod(s, m)),
		file(manifestsDir+"/kube-controller-manager.yaml", 0o644, controllerManagerPod(s)),
		file(manifestsDir+"/kube-scheduler.yaml", 0o644, schedulerPod()),
	}
	return files, []types.Unit{unit("etcd-member.service", etcd), kubelet}
}

func worker(s *sites.Site, m *sites.Machine) ([]types.File, []types.Unit) {
	kubelet := kubeletUnit(m, "worker",
		"--bootstrap-kubeconfig="+BootstrapKubeconfigPath,
		"--kubeconfig="+kubeletKubeconfig,
		"--rotate-certificates")
	// The join token is a secret: the kubeconfig names a token file that is
	// provisioned out of band instead of carrying the token.
	boot := kubeconfig(s.Cluster.Name, fmt.Sprintf("https://%s:6443", s.Cluster.APIVIP), kubeUser{TokenFile: "/etc/kubernetes/bootstrap-token"})
	return []types.File{file(BootstrapKubeconfigPath, 0o600, boot)}, []types.Unit{kubelet}
}

func kubeletUnit(m *sites.Machine, role string, flags ...string) types.Unit {
	argv := append([]string{"/usr/bin/kubelet",
		"--hostname-override=" + m.Name,
		"--node-ip=" + m.IP.String(),
		"--node-labels=" + RoleLabel + "=" + role},
		flags...)
	contents := unitFile(
		[]string{"Description=Kubernetes kubelet (" + role + ")", "Wants=network-online.target", "After=network-online.target"},
		[]string{"Restart=always", "RestartSec=5", execStart(argv...)},
	)
	return unit("kubelet.service", contents)
}

// kubeUser is a kubeconfig user entry; the field names are kubeconfig's.
type kubeUser struct {
	ClientCertificate string `yaml:"client-certificate,omitempty"`
	ClientKey         string `yaml:"client-key,omitempty"`
	TokenFile         string `yaml:"tokenFile,omitempty"`
}

// kubeconfig renders a one-cluster, one-user kubeconfig.
func kubeconfig(cluster, server string, user kubeUser) string {
	type named struct {
		Name    string `yaml:"name"`
		Cluster any    `yaml:"cluster,omitempty"`
		User    any    `yaml:"user,omitempty"`
		Context any    `yaml:"context,omitempty"`
	}
	type clusterEntry struct {
		Server               string `yaml:"server"`
		CertificateAuthority string `yaml:"certificate-authority"`
	}
	type contextEntry struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	}
	return toYAML(struct {
		APIVersion     string  `yaml:"apiVersion"`
		Kind           string  `yaml:"kind"`
		Clusters       []named `yaml:"clusters"`
		Users          []named `yaml:"users"`
		Contexts       []named `yaml:"contexts"`
		CurrentContext string  `yaml:"current-context"`
	}{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []named{{Name: cluster, Cluster: clusterEntry{Server: server, CertificateAuthority: pki + "/ca.crt"}}},
		Users:          []named{{Name: "kubelet", User: user}},
		Contexts:       []named{{Name: "kubelet@" + cluster, Context: contextEntry{Cluster: cluster, User: "kubelet"}}},
		CurrentContext: "kubelet@" + cluster,
	})
}

// pod is the part of a static pod manifest we write.
type pod struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   podMetadata `yaml:"metadata"`
	Spec       podSpec     `yaml:"spec"`
}

type podMetadata struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type podSpec struct {
	HostNetwork       bool        `yaml:"hostNetwork"`
	PriorityClassName string      `yaml:"priorityClassName"`
	Containers        []container `yaml:"containers"`
	Volumes           []volume    `yaml:"volumes"`
}

type container struct {
	Name         string        `yaml:"name"`
	Image        string        `yaml:"image"`
	Command      []string      `yaml:"command"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name     string   `yaml:"name"`
	HostPath hostPath `yaml:"hostPath"`
}

type hostPath struct {
	Path string `yaml:"path"`
	Type string `yaml:"type"`
}

// staticPod builds a control-plane static pod that reads /etc/kubernetes.
func staticPod(name string, command ...string) string {
	return toYAML(pod{
		APIVersion: "v1",
		Kind:       "Pod",
		Metadata: podMetadata{Name: name, Namespace: "kube-system",
			Labels: map[string]string{"component": name, "tier": "control-plane"}},
		Spec: podSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			Containers: []container{{
				Name:         name,
				Image:        "registry.k8s.io/" + name + ":" + kubernetesVersion,
				Command:      command,
				VolumeMounts: []volumeMount{{Name: "k8s", MountPath: "/etc/kubernetes", ReadOnly: true}},
			}},
			Volumes: []volume{{Name: "k8s", HostPath: hostPath{Path: "/etc/kubernetes", Type: "Directory"}}},
		},
	})
}

func apiServerPod(s *sites.Site, m *sites.Machine) string {
	return staticPod("kube-apiserver", "kube-apiserver",
		"--advertise-address="+m.IP.String(),
		"--secure-port=6443",
		"--etcd-servers="+etcdServers(s),
		"--etcd-cafile="+pki+"/etcd/ca.crt",
		"--etcd-certfile="+pki+"/apiserver-etcd-client.crt",
		"--etcd-keyfile="+pki+"/apiserver-etcd-client.key",
		"--client-ca-file="+pki+"/ca.crt",
		"--tls-cert-file="+pki+"/apiserver.crt",
		"--tls-private-key-file="+pki+"/apiserver.key",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki+"/sa.pub",
		"--service-account-signing-key-file="+pki+"/sa.key",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction")
}

func controllerManagerPod(s *sites.Site) string {
	return staticPod("kube-controller-manager", "kube-controller-manager",
		"--kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--cluster-name="+s.Cluster.Name,
		"--leader-elect=true",
		"--root-ca-file="+pki+"/ca.crt",
		"--service-account-private-key-file="+pki+"/sa.key",
		"--use-service-account-credentials=true")
}

func schedulerPod() string {
	return staticPod("kube-scheduler", "kube-scheduler",
		"--kubeconfig=/etc/kubernetes/scheduler.conf",
		"--leader-elect=true")
}

// toYAML marshals a value built here with the usual two-space indent;
// yaml.v3 sorts map keys, so the output is deterministic. Only structs of
// strings, bools, slices and string maps reach it, which cannot fail to
// encode, so an error is left in the output rather than threaded through.
func toYAML(v any) string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("# marshal error: %v\n", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Sprintf("# marshal error: %v\n", err)
	}
	return b.String()
}
