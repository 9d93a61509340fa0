//! End-to-end tests: one binary, one module per area. Every test starts its own server on
//! port 0 with a fresh database (SQLite, or PostgreSQL when `INSPECTOR_TEST_PG_URL` is set).

mod act;
mod act_browser;
mod after_end;
mod api;
mod authz;
mod browser;
mod connections;
mod devcheck;
mod evidence;
mod firefox_browser;
mod geo_banner;
mod headers;
mod lifecycle;
mod live;
mod login;
mod media_loss;
mod messages_browser;
mod notices;
mod notices_push;
mod onsite;
mod onsite_browser;
mod openapi;
mod photo_browser;
mod prescriptions;
mod prescriptions_browser;
mod push_browser;
mod ratings;
mod ratings_browser;
mod room_flood;
mod socket_lifetime;
mod ux;
mod webkit_browser;
