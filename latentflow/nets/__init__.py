"""Network architectures: modules that build nn.Modules and import no models / train code."""
