//! The three RPCs: each takes its caller, parses its message ([`crate::messages`]), asks
//! [`SelfService`], and answers the outcome, or the refusal as a Connect error
//! ([`crate::errors`]).

use std::sync::Arc;

use connectrpc::{ConnectError, RequestContext, Response, ServiceRequest, ServiceResult};
use paysaga_domain::WalletId;
use paysaga_http::Caller;
use paysaga_services::self_service::SelfService;
use paysaga_wallet_proto::v1;

use crate::caller::caller;
use crate::errors::refused;
use crate::messages::{self, Submission};

/// The `WalletService`, over the owner's operations.
pub struct WalletRpc {
    service: Arc<SelfService>,
}

impl WalletRpc {
    pub fn new(service: Arc<SelfService>) -> Self {
        Self { service }
    }

    /// Submits a transfer, a top-up or a payout; the payment as it stands.
    async fn submit(
        &self,
        caller: &Caller,
        submission: Submission,
    ) -> Result<v1::Payment, ConnectError> {
        let payment = self
            .service
            .submit(caller.owner(), submission.order, &submission.key)
            .await
            .map_err(refused)?;
        Ok(messages::payment(&payment))
    }
}

// The trait's answers are `impl Encodable<Response>`, so that a handler may answer a borrowed
// view; these answer the owned messages, which refines the signatures (connectrpc's guide).
#[allow(refining_impl_trait)]
impl v1::WalletService for WalletRpc {
    async fn get_balance(
        &self,
        context: RequestContext,
        request: ServiceRequest<'_, v1::GetBalanceRequest>,
    ) -> ServiceResult<v1::GetBalanceResponse> {
        let caller = caller(&context)?;
        let wallet_id = messages::id("wallet_id", request.wallet_id, WalletId::parse)?;
        let wallet = self
            .service
            .wallet(caller.owner(), &wallet_id)
            .await
            .map_err(refused)?;
        Response::ok(messages::balance(&wallet))
    }

    async fn transfer_funds(
        &self,
        context: RequestContext,
        request: ServiceRequest<'_, v1::TransferFundsRequest>,
    ) -> ServiceResult<v1::TransferFundsResponse> {
        let caller = caller(&context)?;
        let submission = Submission::try_from(request.to_owned_message())?;
        Response::ok(v1::TransferFundsResponse {
            payment: self.submit(caller, submission).await?.into(),
            ..Default::default()
        })
    }

    async fn update_balance(
        &self,
        context: RequestContext,
        request: ServiceRequest<'_, v1::UpdateBalanceRequest>,
    ) -> ServiceResult<v1::UpdateBalanceResponse> {
        let caller = caller(&context)?;
        let submission = Submission::try_from(request.to_owned_message())?;
        Response::ok(v1::UpdateBalanceResponse {
            payment: self.submit(caller, submission).await?.into(),
            ..Default::default()
        })
    }
}
