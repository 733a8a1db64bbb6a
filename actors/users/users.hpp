#pragma once

#include "actors/entity_kind.hpp"

namespace chorus::users {

/// Entity kinds of the user domain. All are event-sourced in the "user" storage domain, in
/// streams "<kind>/<id>".
inline constexpr const char* user_kind = "user";          ///< id: 32 hex characters
inline constexpr const char* session_kind = "session";    ///< id: SHA-256 hex of the token
inline constexpr const char* username_kind = "username";  ///< id: the lowercased username
inline constexpr const char* email_kind = "email";        ///< id: SHA-256 hex of the address
inline constexpr const char* user_domain = "user";

/// A user account (messages/users.proto): UserCreate, UserGet -> UserProfile, UserGetPrivate ->
/// Me, UserGetCredentials, UserUpdateProfile, UserBecomeArtist, UserApproveArtist,
/// UserSetFollow. Roles are "listener" plus "artist" once granted ("admin" comes from
/// cluster.conf and is added by the edge).
entity_factory user_factory();

/// A session (messages/sessions.proto): SessionOpen, SessionCheck -> SessionInfo, SessionClose.
/// Expires after its idle time without a check, and at its absolute end regardless.
entity_factory session_factory();

/// A unique name of `kind` ("username" or "email"): ClaimTake, ClaimRelease, ClaimGet ->
/// ClaimState. The first owner wins; the name can be taken over only from an owner the caller
/// names (one whose account never came to exist).
entity_factory claim_factory(std::string kind);

}  // namespace chorus::users
