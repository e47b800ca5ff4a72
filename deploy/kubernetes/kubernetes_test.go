// Package kubernetes holds no code: only the test of the kustomize base in this directory. It
// checks the manifests without a cluster or kustomize: every document decodes strictly into
// its k8s.io/api type (so a misspelt field fails instead of being dropped by the API server
// or by kubectl's client-side apply), the security and shutdown promises hold, every name
// the pod refers to exists, and the config file passes `sensor config check`.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/journalsensor/sensor/internal/testkit"
)

// kustomization is the part of kustomize's Kustomization this base uses. Decoding into it
// strictly means a field this test does not know (a patch, a generator) must be added here,
// and checked, before the base may use it.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// externalSecrets are the Secrets the base refers to but does not hold, because their values
// must not be committed. README.md must say how to create each.
var externalSecrets = []string{"sensor-pipeline-token", "sensor-tls"}

// manifests is the base, decoded.
type manifests struct {
	sts        []*appsv1.StatefulSet
	services   []*corev1.Service
	configMaps []*corev1.ConfigMap
	pdbs       []*policyv1.PodDisruptionBudget
}

// decodeStrict decodes one YAML document into v, failing on a field v has no place for and
// on anything after the first value.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one value in one document")
	}
	return nil
}

// documents splits a YAML stream at its "---" lines. The base's files are written by hand,
// so a separator line is all there is to find.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) == "" {
			continue // only comments
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

func load(t *testing.T) *manifests {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	if len(k.Resources) == 0 {
		t.Fatal("kustomization.yaml lists no resources")
	}
	m := &manifests{}
	for _, file := range k.Resources {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("kustomization.yaml names %s: %v", file, err)
		}
		docs := documents(data)
		if len(docs) == 0 {
			t.Errorf("%s: no document", file)
		}
		for i, doc := range docs {
			var tm struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", file, i+1, err)
			}
			var v any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				s := &appsv1.StatefulSet{}
				m.sts, v = append(m.sts, s), s
			case "v1 Service":
				s := &corev1.Service{}
				m.services, v = append(m.services, s), s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				m.configMaps, v = append(m.configMaps, c), c
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				m.pdbs, v = append(m.pdbs, p), p
			default:
				t.Fatalf("%s document %d: %s %s: this test does not know that kind; add it", file, i+1, tm.APIVersion, tm.Kind)
			}
			if err := decodeStrict(doc, v); err != nil {
				t.Fatalf("%s document %d (%s): %v", file, i+1, tm.Kind, err)
			}
		}
	}
	return m
}

func (m *manifests) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	if len(m.sts) != 1 || m.sts[0].Name != "sensor" {
		t.Fatalf("want one StatefulSet named sensor, have %d", len(m.sts))
	}
	return m.sts[0]
}

func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := m.statefulSet(t).Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "sensor" {
		t.Fatalf("want one container named sensor, have %d", len(cs))
	}
	return &cs[0]
}

func (m *manifests) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

func (m *manifests) configMap(name string) *corev1.ConfigMap {
	for _, c := range m.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// sensorConfig is the config file the pod reads: the --config argument, found among the
// pod's mounted files.
func (m *manifests) sensorConfig(t *testing.T) (mountPath, text string) {
	t.Helper()
	c := m.container(t)
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %q: no --config FILE", c.Args)
	}
	p := c.Args[i+1]
	f, ok := m.mountedFiles(t)[p]
	if !ok {
		t.Fatalf("--config %s: no mounted file", p)
	}
	if f.kind != "ConfigMap" {
		t.Fatalf("--config %s comes from %s %s, not a ConfigMap", p, f.kind, f.name)
	}
	cm := m.configMap(f.name)
	if cm == nil {
		t.Fatalf("--config %s: no ConfigMap %s in the base", p, f.name)
	}
	text, ok = cm.Data[f.key]
	if !ok {
		t.Fatalf("--config %s: ConfigMap %s has no key %s", p, f.name, f.key)
	}
	return p, text
}

// source is where a mounted file comes from.
type source struct {
	kind, name, key string
	optional        bool
}

// mountedFiles maps each file path the container sees from a ConfigMap or Secret to its
// source. Only item lists are followed: the base names every file it mounts.
func (m *manifests) mountedFiles(t *testing.T) map[string]source {
	t.Helper()
	c := m.container(t)
	files := map[string]source{}
	for _, vol := range m.statefulSet(t).Spec.Template.Spec.Volumes {
		var add func(dir string)
		addItems := func(dir, kind, name string, optional *bool, items []corev1.KeyToPath) {
			for _, it := range items {
				files[path.Join(dir, it.Path)] = source{kind, name, it.Key, optional != nil && *optional}
			}
		}
		switch {
		case vol.ConfigMap != nil:
			add = func(dir string) {
				addItems(dir, "ConfigMap", vol.ConfigMap.Name, vol.ConfigMap.Optional, vol.ConfigMap.Items)
			}
		case vol.Secret != nil:
			add = func(dir string) {
				addItems(dir, "Secret", vol.Secret.SecretName, vol.Secret.Optional, vol.Secret.Items)
			}
		case vol.Projected != nil:
			add = func(dir string) {
				for _, s := range vol.Projected.Sources {
					if s.ConfigMap != nil {
						addItems(dir, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Optional, s.ConfigMap.Items)
					}
					if s.Secret != nil {
						addItems(dir, "Secret", s.Secret.Name, s.Secret.Optional, s.Secret.Items)
					}
				}
			}
		default:
			continue
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == vol.Name && vm.SubPath == "" {
				add(vm.MountPath)
			}
		}
	}
	return files
}

func TestSecurityContext(t *testing.T) {
	m := load(t)
	pod := m.statefulSet(t).Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil {
		t.Fatal("no pod securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod runAsNonRoot is not true")
	}
	for name, id := range map[string]*int64{"runAsUser": psc.RunAsUser, "runAsGroup": psc.RunAsGroup, "fsGroup": psc.FSGroup} {
		if id == nil || *id != 65532 {
			t.Errorf("pod %s is not 65532", name)
		}
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: the sensor needs no API token")
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Error("enableServiceLinks is not false: the Service sensor would put SENSOR_* variables into the environment")
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
		}
	}
}

// configValues parses the config file. Commented-out settings ("# tls-cert: ...": a
// lower-case key right after the #) are returned too, in commented, so that a documented
// setting an operator will uncomment is checked like the rest.
func configValues(t *testing.T, text string) (values map[string]any, commented map[string]string) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(text), &values); err != nil {
		t.Fatalf("the config is not YAML: %v", err)
	}
	commented = map[string]string{}
	for _, sm := range regexp.MustCompile(`(?m)^#\s?([a-z0-9]+(?:-[a-z0-9]+)*):[ \t]*(.*)$`).FindAllStringSubmatch(text, -1) {
		commented[sm[1]] = strings.TrimSpace(sm[2])
	}
	return values, commented
}

func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %s", c.Name, name)
	return 0
}

// listenPort checks that a listen address in the config takes connections from outside the
// pod, and returns its port.
func listenPort(t *testing.T, values map[string]any, key string) string {
	t.Helper()
	addr, _ := values[key].(string)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("config %s %q: %v", key, addr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("config %s %q: listens on one address only; the Service and the kubelet reach the pod's IP", key, addr)
	}
	return port
}

func TestProbesAndPorts(t *testing.T) {
	m := load(t)
	c := m.container(t)
	_, text := m.sensorConfig(t)
	values, _ := configValues(t, text)
	if got, want := listenPort(t, values, "admin-listen"), fmt.Sprint(containerPort(t, c, "admin")); got != want {
		t.Errorf("config admin-listen port %s, container port admin %s", got, want)
	}
	if got, want := listenPort(t, values, "smtp-listen"), fmt.Sprint(containerPort(t, c, "smtp")); got != want {
		t.Errorf("config smtp-listen port %s, container port smtp %s", got, want)
	}
	if p := containerPort(t, c, "admin"); p != 9025 {
		t.Errorf("container port admin is %d, want 9025", p)
	}
	for _, pr := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", pr.name)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path {
			t.Errorf("%s path %q, want %q", pr.name, g.Path, pr.path)
		}
		port := g.Port.IntVal
		if g.Port.StrVal != "" {
			port = containerPort(t, c, g.Port.StrVal)
		}
		if port != containerPort(t, c, "admin") {
			t.Errorf("%s port %s is not the admin port", pr.name, g.Port.String())
		}
	}
}

// TestShutdownFitsGracePeriod: on SIGTERM the sensor lets messages finish for up to
// --shutdown-timeout and then flushes uploads for 10s; SIGKILL must not come first.
func TestShutdownFitsGracePeriod(t *testing.T) {
	m := load(t)
	_, text := m.sensorConfig(t)
	values, _ := configValues(t, text)
	shutdown := 15 * time.Second // serve's default
	if s, ok := values["shutdown-timeout"].(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("shutdown-timeout %q: %v", s, err)
		}
		shutdown = d
	}
	if env := envValue(m.container(t), "SENSOR_SHUTDOWN_TIMEOUT"); env != "" {
		t.Fatalf("SENSOR_SHUTDOWN_TIMEOUT is set: keep the bound in one place, the config")
	}
	grace := m.statefulSet(t).Spec.Template.Spec.TerminationGracePeriodSeconds
	need := shutdown + 10*time.Second
	if grace == nil || time.Duration(*grace)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds must exceed shutdown-timeout %v + 10s upload flush = %v", shutdown, need)
	}
}

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestVolumesAndReferences(t *testing.T) {
	m := load(t)
	sts := m.statefulSet(t)
	pod := sts.Spec.Template.Spec
	c := m.container(t)

	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	claims := map[string]bool{}
	for _, vct := range sts.Spec.VolumeClaimTemplates {
		claims[vct.Name] = true
		if volumes[vct.Name] {
			t.Errorf("volume %s is both a pod volume and a volumeClaimTemplate", vct.Name)
		}
	}
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		if !volumes[vm.Name] && !claims[vm.Name] {
			t.Errorf("volumeMount %s names no volume and no volumeClaimTemplate", vm.Name)
		}
		mounts[vm.Name] = vm.MountPath
	}
	if !claims["data"] {
		t.Fatal("no volumeClaimTemplate data: each replica must own its spool")
	}
	if mounts["data"] != "/var/lib/sensor" {
		t.Errorf("data is mounted at %q, want /var/lib/sensor", mounts["data"])
	}
	if d := envValue(c, "SENSOR_DATA_DIR"); d != mounts["data"] {
		t.Errorf("SENSOR_DATA_DIR %q is not the data volume's mount %q: the spool would be on the read-only root", d, mounts["data"])
	}

	// Every ConfigMap and Secret named anywhere in the pod.
	type ref struct{ kind, name, where string }
	var refs []ref
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			refs = append(refs, ref{"ConfigMap", v.ConfigMap.Name, "volume " + v.Name})
		}
		if v.Secret != nil {
			refs = append(refs, ref{"Secret", v.Secret.SecretName, "volume " + v.Name})
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					refs = append(refs, ref{"ConfigMap", s.ConfigMap.Name, "volume " + v.Name})
				}
				if s.Secret != nil {
					refs = append(refs, ref{"Secret", s.Secret.Name, "volume " + v.Name})
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			refs = append(refs, ref{"ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, "env " + e.Name})
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			refs = append(refs, ref{"Secret", e.ValueFrom.SecretKeyRef.Name, "env " + e.Name})
		}
	}
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil {
			refs = append(refs, ref{"ConfigMap", e.ConfigMapRef.Name, "envFrom"})
		}
		if e.SecretRef != nil {
			refs = append(refs, ref{"Secret", e.SecretRef.Name, "envFrom"})
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		switch r.kind {
		case "ConfigMap":
			if m.configMap(r.name) == nil {
				t.Errorf("%s names ConfigMap %s, which the base does not hold", r.where, r.name)
			}
		case "Secret":
			if !slices.Contains(externalSecrets, r.name) {
				t.Errorf("%s names Secret %s, which is not one of the documented %v", r.where, r.name, externalSecrets)
			}
			if !regexp.MustCompile(`kubectl create secret \w+ ` + regexp.QuoteMeta(r.name) + `\b`).Match(readme) {
				t.Errorf("README.md does not say how to create Secret %s (kubectl create secret ... %s)", r.name, r.name)
			}
		}
	}

	// Every file the config names is mounted, from the right place; the TLS pair from an
	// optional Secret, since the pod must start without it.
	_, text := m.sensorConfig(t)
	values, commented := configValues(t, text)
	files := m.mountedFiles(t)
	pathKeys := pathKeys(values, commented)
	if len(pathKeys) == 0 {
		t.Fatal("the config names no file: pipeline-token-file at least is expected")
	}
	for key, p := range pathKeys {
		f, ok := files[p]
		if !ok {
			t.Errorf("config %s: %s is not a mounted file", key, p)
			continue
		}
		switch key {
		case "pipeline-token-file":
			if f.kind != "Secret" || f.name != "sensor-pipeline-token" {
				t.Errorf("config %s: %s comes from %s %s", key, p, f.kind, f.name)
			}
		case "tls-cert", "tls-key":
			if f.kind != "Secret" || f.name != "sensor-tls" || !f.optional {
				t.Errorf("config %s: %s must come from the optional Secret sensor-tls", key, p)
			}
		}
	}
}

// pathKeys are the config's settings, active or commented out, whose value is a file.
func pathKeys(values map[string]any, commented map[string]string) map[string]string {
	out := map[string]string{}
	isPath := func(k string) bool { return strings.HasSuffix(k, "-file") || k == "tls-cert" || k == "tls-key" }
	for k, v := range commented {
		if isPath(k) {
			out[k] = v
		}
	}
	for k, v := range values {
		if s, ok := v.(string); ok && isPath(k) {
			out[k] = s
		}
	}
	return out
}

func TestSelectors(t *testing.T) {
	m := load(t)
	sts := m.statefulSet(t)
	labels := sts.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if sts.Spec.Selector == nil || len(sts.Spec.Selector.MatchExpressions) > 0 || !matches(sts.Spec.Selector.MatchLabels) {
		t.Error("the StatefulSet's selector does not match its pod labels")
	}
	c := m.container(t)
	for _, s := range m.services {
		if !matches(s.Spec.Selector) {
			t.Errorf("Service %s: selector %v does not match the pod labels %v", s.Name, s.Spec.Selector, labels)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" {
				containerPort(t, c, p.TargetPort.StrVal)
			} else if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p.TargetPort.IntVal }) {
				t.Errorf("Service %s port %s: targetPort %d is no container port", s.Name, p.Name, p.TargetPort.IntVal)
			}
		}
	}
	mail := m.service(t, "sensor")
	if mail.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service sensor is %s, want ClusterIP (expose it in an overlay)", mail.Spec.Type)
	}
	if len(mail.Spec.Ports) != 1 || mail.Spec.Ports[0].Port != 25 || containerPortOf(c, mail.Spec.Ports[0].TargetPort.StrVal) != 2525 {
		t.Errorf("Service sensor: want port 25 to the container's 2525, have %+v", mail.Spec.Ports)
	}
	headless := m.service(t, sts.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s, the StatefulSet's serviceName, is not headless", headless.Name)
	}
	if len(m.pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, have %d", len(m.pdbs))
	}
	pdb := m.pdbs[0]
	if pdb.Spec.Selector == nil || len(pdb.Spec.Selector.MatchExpressions) > 0 || !matches(pdb.Spec.Selector.MatchLabels) {
		t.Error("the PodDisruptionBudget's selector does not match the pod labels")
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Error("the PodDisruptionBudget must say maxUnavailable: 1 and nothing else")
	}
}

func containerPortOf(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestConfigPassesConfigCheck runs the real `sensor config check` on the ConfigMap's config,
// with the container's SENSOR_* environment, so every key must be a flag of `sensor serve`
// and every value must be one serve accepts. The files the config names are mounted from
// Secrets that do not exist here, so "no such file" for those keys, and only that, is
// expected. Commented-out settings are checked the same way, uncommented.
func TestConfigPassesConfigCheck(t *testing.T) {
	m := load(t)
	c := m.container(t)
	_, text := m.sensorConfig(t)
	values, commented := configValues(t, text)
	files := pathKeys(values, commented)

	dir := t.TempDir()
	bin := testkit.BuildSensor(t, dir)

	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SENSOR_") {
			env = append(env, e)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "SENSOR_") {
			if e.ValueFrom != nil {
				t.Errorf("env %s: a value from elsewhere cannot be checked here; set it in the config", e.Name)
			}
			env = append(env, e.Name+"="+e.Value)
		}
	}

	uncommented := regexp.MustCompile(`(?m)^#\s?([a-z0-9]+(?:-[a-z0-9]+)*:)`).ReplaceAllString(text, "$1")
	for name, cfg := range map[string]string{"as shipped": text, "with commented settings on": uncommented} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "config", "check", "--config", file)
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if err == nil {
				return // config OK: only possible where the mounted files exist
			}
			if exit.ExitCode() != 1 {
				t.Fatalf("sensor config check exited %d:\n%s", exit.ExitCode(), stderr.String())
			}
			keyRE := regexp.MustCompile(`key "([^"]+)"`)
			summary := regexp.MustCompile(`: \d+ problems?$`)
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if summary.MatchString(line) {
					continue
				}
				sm := keyRE.FindStringSubmatch(line)
				if sm == nil || !strings.Contains(line, "no such file or directory") {
					t.Errorf("sensor config check: %s", line)
					continue
				}
				if _, ok := files[sm[1]]; !ok {
					t.Errorf("sensor config check: %s (not a file the pod mounts)", line)
				}
			}
		})
	}
}
