{{/* Names: 63 characters at most, the DNS label limit. */}}
{{- define "kamailio-probe-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kamailio-probe-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "kamailio-probe-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kamailio-probe-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kamailio-probe-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kamailio-probe-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kamailio-probe-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.image" -}}
{{- if not .Values.image.repository -}}
{{- fail (printf "\n\nimage.repository is not set. No public registry has the kamailio-probe-exporter image: build it from the repository's Dockerfile and push it to your registry, then install with --set image.repository=REGISTRY/kamailio-probe-exporter:\n\n  docker build --build-arg VERSION=%[1]s -t REGISTRY/kamailio-probe-exporter:%[1]s .\n  docker push REGISTRY/kamailio-probe-exporter:%[1]s\n\n(see docs/deploy.md)" .Chart.AppVersion) -}}
{{- end -}}
{{- $repository := .Values.image.repository -}}
{{- with .Values.image.registry -}}
{{- $repository = printf "%s/%s" . $repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the pod finds its files: one projected volume holds them all. */}}
{{- define "kamailio-probe-exporter.configDir" -}}
/etc/kamailio-probe-exporter
{{- end -}}

{{- define "kamailio-probe-exporter.scheme" -}}
{{- if and .Values.webConfig.enabled .Values.webConfig.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* host:port of the Service, as Prometheus reaches it. */}}
{{- define "kamailio-probe-exporter.serviceAddress" -}}
{{- printf "%s.%s.svc:%d" (include "kamailio-probe-exporter.fullname" .) (include "kamailio-probe-exporter.namespace" .) (int .Values.service.port) -}}
{{- end -}}

{{/* The web config file: the user's, plus tls_server_config for the mounted TLS Secret. */}}
{{- define "kamailio-probe-exporter.webConfig" -}}
{{- $config := deepCopy .Values.webConfig.config -}}
{{- if and .Values.webConfig.tls.enabled .Values.webConfig.tls.secretName (not (hasKey $config "tls_server_config")) -}}
{{- $dir := include "kamailio-probe-exporter.configDir" . -}}
{{- $_ := set $config "tls_server_config" (dict "cert_file" (printf "%s/tls/tls.crt" $dir) "key_file" (printf "%s/tls/tls.key" $dir)) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Settings shared by the ServiceMonitor, the Probe and the ScrapeConfig. */}}
{{- define "kamailio-probe-exporter.scrapeClient" -}}
{{- with .Values.scrapeClient.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scrapeClient.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The egress ports: networkPolicy.egress.ports, plus those of the targets' and allow rules'
tcp/udp addresses (2049 when they name none; a '*' port adds nothing) and of the targets'
xhttp_prom_url and rtpengine_metrics_url (80 or 443 by scheme when they name none). */}}
{{- define "kamailio-probe-exporter.egressPorts" -}}
{{- $ports := list -}}
{{- range .Values.networkPolicy.egress.ports -}}
{{- $ports = append $ports . -}}
{{- end -}}
{{- range concat (default list .Values.targets.targets) (default list .Values.targets.allow) -}}
{{- $address := .address | default "" -}}
{{- $protocol := regexFind "^[a-zA-Z]+:" $address | trimSuffix ":" | lower -}}
{{- if has $protocol (list "tcp" "udp") -}}
{{- $rest := trimPrefix (printf "%s:" (regexFind "^[a-zA-Z]+" $address)) $address -}}
{{- $port := regexFind ":([0-9]+|\\*)$" (regexReplaceAll "^\\[[^\\]]*\\]" $rest "") | trimPrefix ":" -}}
{{- if ne $port "*" -}}
{{- $ports = append $ports (dict "port" (int (default "2049" $port)) "protocol" (upper $protocol)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.targets.targets -}}
{{- range $url := list .xhttp_prom_url .rtpengine_metrics_url -}}
{{- if $url -}}
{{- $parsed := urlParse $url -}}
{{- $port := regexFind ":[0-9]+$" (regexReplaceAll "^.*@" $parsed.host "") | trimPrefix ":" -}}
{{- $default := ternary "443" "80" (eq (lower $parsed.scheme) "https") -}}
{{- $ports = append $ports (dict "port" (int (default $default $port)) "protocol" "TCP") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Once each; YAML gives the listed ports as floats, hence the comparison as text. */ -}}
{{- $unique := list -}}
{{- $seen := dict -}}
{{- range $ports -}}
{{- $key := printf "%s/%s" (toString .port) (default "TCP" .protocol) -}}
{{- if not (hasKey $seen $key) -}}
{{- $_ := set $seen $key true -}}
{{- $unique = append $unique . -}}
{{- end -}}
{{- end -}}
{{- toYaml $unique -}}
{{- end -}}

{{/* --config.auto-reload-interval: config.autoReloadInterval, or when null 30 where a changed
file rolls no pod or POST /-/reload would reach one of several, else 0 (off). */}}
{{- define "kamailio-probe-exporter.autoReloadInterval" -}}
{{- $interval := .Values.config.autoReloadInterval -}}
{{- if kindIs "invalid" $interval -}}
{{- $existing := or .Values.existingConfig.configMapName .Values.existingConfig.secretName -}}
{{- if or $existing .Values.autoscaling.enabled (gt (int .Values.replicas) 1) -}}
30
{{- else -}}
0
{{- end -}}
{{- else -}}
{{- $interval -}}
{{- end -}}
{{- end -}}
