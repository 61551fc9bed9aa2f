{{/*
A TOML writer for targets.toml. Helm's toToml writes every number as a float, because Helm
reads all numbers in values as float64, and max_connections = 1024.0 is not an integer. Here a
number without a fraction is written as an integer (the exporter takes integers for seconds).
In each table: plain keys first, then sub-tables, then arrays of tables; keys sorted. Null
values and empty lists are left out; a table's [header] is written only when the table has
plain keys or is empty.
*/}}
{{- define "kamailio-probe-exporter.toml" -}}
{{- include "kamailio-probe-exporter.toml.table" (dict "table" . "path" "") | trim -}}
{{- end -}}

{{- define "kamailio-probe-exporter.toml.table" -}}
{{- $table := .table -}}
{{- $path := .path -}}
{{- range $key := keys $table | sortAlpha -}}
{{- $value := get $table $key -}}
{{- if include "kamailio-probe-exporter.toml.isPlain" $value }}
{{ include "kamailio-probe-exporter.toml.key" $key }} = {{ include "kamailio-probe-exporter.toml.value" $value }}
{{- end -}}
{{- end -}}
{{- range $key := keys $table | sortAlpha -}}
{{- $value := get $table $key -}}
{{- $subpath := include "kamailio-probe-exporter.toml.key" $key -}}
{{- if $path -}}{{- $subpath = printf "%s.%s" $path $subpath -}}{{- end -}}
{{- if kindIs "map" $value -}}
{{- if or (not $value) (include "kamailio-probe-exporter.toml.hasPlain" $value) }}

[{{ $subpath }}]
{{- end -}}
{{- include "kamailio-probe-exporter.toml.table" (dict "table" $value "path" $subpath) -}}
{{- else if include "kamailio-probe-exporter.toml.isTableArray" $value -}}
{{- range $item := $value }}

[[{{ $subpath }}]]
{{- include "kamailio-probe-exporter.toml.table" (dict "table" $item "path" $subpath) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" for a value written as key = value. */}}
{{- define "kamailio-probe-exporter.toml.isPlain" -}}
{{- if not (or (kindIs "invalid" .) (kindIs "map" .) (and (kindIs "slice" .) (not .)) (include "kamailio-probe-exporter.toml.isTableArray" .)) -}}true{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.toml.hasPlain" -}}
{{- range $key, $value := . -}}{{- if include "kamailio-probe-exporter.toml.isPlain" $value -}}true{{- end -}}{{- end -}}
{{- end -}}

{{/* "true" for a non-empty list of maps, written as [[array.of.tables]]. */}}
{{- define "kamailio-probe-exporter.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}
{{- $all := true -}}
{{- range . -}}{{- if not (kindIs "map" .) -}}{{- $all = false -}}{{- end -}}{{- end -}}
{{- if $all -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "kamailio-probe-exporter.toml.value" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}
{{- . -}}
{{- else if kindIs "slice" . -}}
{{- $items := list -}}
{{- range . -}}{{- $items = append $items (include "kamailio-probe-exporter.toml.value" .) -}}{{- end -}}
[{{ join ", " $items }}]
{{- else -}}
{{- fail (printf "targets: cannot write %v (%s) as TOML" . (kindOf .)) -}}
{{- end -}}
{{- end -}}
