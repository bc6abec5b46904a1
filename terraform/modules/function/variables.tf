variable "project_id" { type = string }
variable "region" { type = string }

variable "name" {
  description = "Function (and Cloud Run service) name."
  type        = string
}

variable "entry_point" {
  description = "Entry point exported by main.py."
  type        = string
}

variable "description" {
  type    = string
  default = ""
}

variable "source_bucket" { type = string }
variable "source_object" { type = string }

variable "public" {
  description = "Allow unauthenticated invocation (the function checks API keys itself)."
  type        = bool
  default     = false
}

variable "invokers" {
  description = "IAM members allowed to invoke the function (besides scheduler and push accounts)."
  type        = list(string)
  default     = []
}

variable "memory" {
  type    = string
  default = "256Mi"
}

variable "cpu" {
  type    = string
  default = "1"
}

variable "timeout_seconds" {
  type    = number
  default = 60
}

variable "min_instances" {
  type    = number
  default = 0
}

variable "max_instances" {
  type    = number
  default = 10
}

variable "concurrency" {
  description = "Requests one instance serves at once (more than 1 needs cpu >= 1)."
  type        = number
  default     = 1
}

variable "roles" {
  description = "Project roles of the function's own service account (least privilege)."
  type        = list(string)
  default     = []
}

variable "datastore_role" {
  description = "Firestore role bound instead of the topology's roles/datastore.* role (null: the topology's)."
  type        = string
  default     = null
}

variable "firestore_database" {
  description = "The Firestore database the function may use (its Firestore role is conditioned on it)."
  type        = string
  default     = "(default)"
}

variable "erase_databases" {
  description = "Other Firestore databases where the function may delete documents (erase_role, conditioned on each)."
  type        = list(string)
  default     = []
}

variable "erase_role" {
  description = "The custom role of erase_databases: delete documents only."
  type        = string
  default     = null
}

variable "read_databases" {
  description = "Other Firestore databases the function may read (roles/datastore.viewer, conditioned on each)."
  type        = list(string)
  default     = []
}

variable "ingress" {
  description = "Ingress of a non-public function: internal only, internal and an external load balancer, or all (ingest's senders outside Google Cloud); invoking it always takes run.invoker."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"
  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"], var.ingress)
    error_message = "ingress must be ALLOW_INTERNAL_ONLY, ALLOW_INTERNAL_AND_GCLB or ALLOW_ALL; only a public function is invoked by allUsers."
  }
}

variable "vpc_network" {
  description = "VPC network id for Direct VPC egress (with vpc_subnetwork), e.g. to reach Memorystore."
  type        = string
  default     = null
}

variable "vpc_subnetwork" {
  description = "Subnetwork id for Direct VPC egress; null: no VPC egress."
  type        = string
  default     = null
}

variable "publishes" {
  description = "Topic names the function may publish to (roles/pubsub.publisher on each topic, not the project)."
  type        = list(string)
  default     = []
}

variable "secrets" {
  description = "Environment variable name => Secret Manager secret id (latest version)."
  type        = map(string)
  default     = {}
}

variable "env" {
  type    = map(string)
  default = {}
}

variable "pubsub_topic" {
  description = "For event functions: the topic whose push subscription feeds this function."
  type        = string
  default     = null
}

variable "pubsub_topic_id" {
  type    = string
  default = null
}

variable "dead_letter_topic_id" {
  type    = string
  default = null
}

variable "max_delivery_attempts" {
  type    = number
  default = 10
}

variable "ack_deadline_seconds" {
  type    = number
  default = 60
}

variable "push_service_account" {
  description = "Service account whose OIDC token the push subscription presents."
  type        = string
  default     = null
}

variable "scheduler_invoker" {
  description = "Service account of Cloud Scheduler jobs that call this function, if any."
  type        = string
  default     = null
}

variable "receives_dead_letters" {
  description = "Pushed from every dead-letter topic (subscriptions made by the root module): the push identity may invoke it."
  type        = bool
  default     = false
}
