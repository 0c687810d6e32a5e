"""Generated code of the stigmer.v1 protobuf contract. Do not edit."""
