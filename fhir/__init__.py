"""FHIR R4 under /fhir/R4: consults as ServiceRequest + Task, the thread as Communication, on-call
specialists as PractitionerRole — a translation at the edge over the domains' own services, so the
boundary and the audit are theirs."""
