//! A trip-booking saga. `trips/book` reserves a flight and a hotel and charges the card, each
//! through a typed client of another durable service. If a later step fails terminally (the
//! card is declined), the steps already done are undone by compensating calls, in reverse
//! order, and the caller gets the original error. Every call is journaled: a crash anywhere
//! resumes the saga where it was, without booking twice.

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{serve, service, Context, Endpoint, HandlerError, TerminalError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct TripRequest {
    pub trip_id: String,
    pub destination: String,
    pub nights: u32,
    pub card_limit_cents: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: String,
    pub price_cents: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Charge {
    pub trip_id: String,
    pub amount_cents: u64,
    pub card_limit_cents: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Itinerary {
    pub trip_id: String,
    pub flight: String,
    pub hotel: String,
    pub payment: String,
    pub total_cents: u64,
}

#[service(name = "flights")]
pub trait Flights {
    async fn reserve(&self, ctx: Context, trip: TripRequest) -> Result<Reservation, HandlerError>;
    async fn cancel(&self, ctx: Context, reservation_id: String) -> Result<(), HandlerError>;
}

#[service(name = "hotels")]
pub trait Hotels {
    async fn reserve(&self, ctx: Context, trip: TripRequest) -> Result<Reservation, HandlerError>;
    async fn cancel(&self, ctx: Context, reservation_id: String) -> Result<(), HandlerError>;
}

#[service(name = "payments")]
pub trait Payments {
    async fn charge(&self, ctx: Context, charge: Charge) -> Result<String, HandlerError>;
}

#[service(name = "trips")]
pub trait Trips {
    async fn book(&self, ctx: Context, trip: TripRequest) -> Result<Itinerary, HandlerError>;
}

struct FlightDesk;

impl Flights for FlightDesk {
    async fn reserve(&self, ctx: Context, trip: TripRequest) -> Result<Reservation, HandlerError> {
        // A real service would call the airline here, inside the step.
        let id = format!("FL-{}-{}", trip.destination, trip.trip_id);
        Ok(ctx
            .run("reserve seat", || async {
                Ok(Reservation {
                    reservation_id: id,
                    price_cents: 45_000,
                })
            })
            .await?)
    }

    async fn cancel(&self, ctx: Context, reservation_id: String) -> Result<(), HandlerError> {
        ctx.run("release seat", || async {
            println!("flights: cancelled {reservation_id}");
            Ok(())
        })
        .await?;
        Ok(())
    }
}

struct HotelDesk;

impl Hotels for HotelDesk {
    async fn reserve(&self, ctx: Context, trip: TripRequest) -> Result<Reservation, HandlerError> {
        let id = format!("HT-{}-{}", trip.destination, trip.trip_id);
        let price = 12_000 * u64::from(trip.nights);
        Ok(ctx
            .run("reserve room", || async {
                Ok(Reservation {
                    reservation_id: id,
                    price_cents: price,
                })
            })
            .await?)
    }

    async fn cancel(&self, ctx: Context, reservation_id: String) -> Result<(), HandlerError> {
        ctx.run("release room", || async {
            println!("hotels: cancelled {reservation_id}");
            Ok(())
        })
        .await?;
        Ok(())
    }
}

struct Bank;

impl Payments for Bank {
    async fn charge(&self, ctx: Context, charge: Charge) -> Result<String, HandlerError> {
        if charge.amount_cents > charge.card_limit_cents {
            return Err(TerminalError::new(format!(
                "card declined: {} cents over the limit of {}",
                charge.amount_cents, charge.card_limit_cents
            ))
            .with_code(402)
            .into());
        }
        Ok(ctx
            .run("charge card", || async {
                Ok(format!("PAY-{}", charge.trip_id))
            })
            .await?)
    }
}

struct TravelAgent;

impl Trips for TravelAgent {
    async fn book(&self, ctx: Context, trip: TripRequest) -> Result<Itinerary, HandlerError> {
        let (flights, hotels, payments) = (
            FlightsClient::new(&ctx),
            HotelsClient::new(&ctx),
            PaymentsClient::new(&ctx),
        );

        let flight = flights.reserve(&trip).await?;
        let hotel = match hotels.reserve(&trip).await {
            Ok(hotel) => hotel,
            Err(e) => {
                flights.cancel(&flight.reservation_id).await?;
                return Err(e.into());
            }
        };
        let total_cents = flight.price_cents + hotel.price_cents;
        let charge = Charge {
            trip_id: trip.trip_id.clone(),
            amount_cents: total_cents,
            card_limit_cents: trip.card_limit_cents,
        };
        let payment = match payments.charge(&charge).await {
            Ok(payment) => payment,
            Err(declined) => {
                // Undo in reverse order; each compensation is a durable call too.
                hotels.cancel(&hotel.reservation_id).await?;
                flights.cancel(&flight.reservation_id).await?;
                return Err(TerminalError::new(format!(
                    "{}; cancelled {} and {}",
                    declined.message(),
                    hotel.reservation_id,
                    flight.reservation_id
                ))
                .with_code(declined.code())
                .into());
            }
        };
        Ok(Itinerary {
            trip_id: trip.trip_id,
            flight: flight.reservation_id,
            hotel: hotel.reservation_id,
            payment,
            total_cents,
        })
    }
}

/// What this Lambda serves: the saga and the three services it calls.
fn endpoint() -> Endpoint {
    Endpoint::new()
        .service(TravelAgent.into_service())
        .service(FlightDesk.into_service())
        .service(HotelDesk.into_service())
        .service(Bank.into_service())
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

#[cfg(test)]
mod tests {
    //! The saga in-process with the test kit: its calls run the other services' handlers in
    //! the same runner. The deployed example is tested end to end in
    //! `localstack-tests/tests/e2e.rs`.

    use super::*;
    use durable_testing::{RunError, TestRunner};

    fn trip(card_limit_cents: u64) -> TripRequest {
        TripRequest {
            trip_id: "t1".into(),
            destination: "LIS".into(),
            nights: 3,
            card_limit_cents,
        }
    }

    #[tokio::test]
    async fn a_trip_within_the_card_limit_is_booked_without_compensations() {
        let runner = TestRunner::new(endpoint());
        let it: serde_json::Value = runner
            .invoke("trips", "book", &trip(1_000_000))
            .await
            .unwrap();
        assert_eq!(it["flight"], "FL-LIS-t1");
        assert_eq!(
            runner.step_runs("release seat") + runner.step_runs("release room"),
            0
        );
    }

    #[tokio::test]
    async fn a_declined_card_compensates_both_reservations_and_fails_the_saga() {
        let runner = TestRunner::new(endpoint());
        let err = runner
            .invoke::<_, serde_json::Value>("trips", "book", &trip(100))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Failed(f) if f.code == 402),
            "{err}"
        );
        assert_eq!(
            (
                runner.step_runs("release seat"),
                runner.step_runs("release room")
            ),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_crash_in_the_saga_books_nothing_twice() {
        let runner = TestRunner::new(endpoint());
        runner.crash_after_entry(0);
        let _: serde_json::Value = runner
            .invoke("trips", "book", &trip(1_000_000))
            .await
            .unwrap();
        assert_eq!(
            runner.step_runs("reserve seat"),
            1,
            "the flight call was not repeated"
        );
        let book = runner.invocations()[0].clone();
        assert_eq!(runner.attempts(&book), 2);
    }
}
