#!/usr/bin/env bash
# Regenerates the talk-off speech corpus used by src/media/inband.rs:
# typical IVR prompt texts in Mandarin and English, spoken by espeak-ng with
# male and female variants and different pitches, converted by sox to the
# detector's input format (8 kHz, mono, 16-bit signed linear PCM WAV).
#
# Needs: espeak-ng (1.51 was used) and sox (14.4.2), e.g.
#   apt-get install espeak-ng sox
# Run from anywhere:  tests/data/speech/make.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say NAME VOICE PITCH SPEED TEXT
say() {
    espeak-ng -v "$2" -p "$3" -s "$4" -w "$tmp/$1.wav" "$5"
    # -D: no dither (repeatable output); peak normalised to -1 dBFS so
    # nothing clips and every file is at a loud, realistic level.
    sox -D "$tmp/$1.wav" -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" gain -n -1
}

CMN_MENU='欢迎致电一零零零零客户服务热线。普通话请按一，英语服务请按二。报障请按九，查询工单请按一，投诉请按二，人工服务请按零。您的工单号是一三八零零一三八零零零，我们将在二十四小时内处理。'
CMN_BUSY='您好，您所拨打的电话正在通话中，请稍后再拨。如需留言，请在提示音后说出您的姓名和电话号码，按井号键结束。'
CMN_BILL='您的账户余额为三百二十五元六角，本月话费一百八十八元。充值请按一，查询积分请按二，返回上一级菜单请按星号键。'
CMN_NUMBER='请输入您的十一位手机号码，以井号键结束。您输入的号码是一三九一二三四五六七八，确认请按一，重新输入请按二。'
CMN_HOURS='感谢您的来电，我们的服务时间是每天早上八点到晚上十点。节假日期间，请拨打九五五八八或者访问我们的网站。再见。'

EN_MENU='Welcome to the customer service hotline. For service in Mandarin, press one. For English, press two. To report a fault, press nine. To check a ticket, press one. To make a complaint, press two. To speak to an operator, press zero.'
EN_TICKET='Your ticket number is nine one three eight zero zero one three eight zero zero zero. We will handle it within twenty four hours. Thank you for calling.'
EN_NUMBER='Please enter your eleven digit phone number, followed by the pound key. You entered 1 3 9, 1 2 3 4, 5 6 7 8. If this is correct, press one. To try again, press two. To return to the main menu, press star.'
EN_BILL='Your account balance is three hundred and twenty five dollars and sixty cents. Your next payment of one hundred and eighty eight dollars is due on March 15th, 2025.'
EN_QUEUE='All of our agents are busy helping other customers. Your call is important to us. Please stay on the line, and your call will be answered in the order it was received. The estimated waiting time is four minutes.'

say cmn_menu_m      cmn      50 150 "$CMN_MENU"
say cmn_menu_f      cmn+f3   70 160 "$CMN_MENU"
say cmn_busy_m      cmn+m3   40 150 "$CMN_BUSY"
say cmn_bill_f      cmn+f2   60 150 "$CMN_BILL"
say cmn_number_f    cmn+f4   80 140 "$CMN_NUMBER"
say cmn_hours_m     cmn      30 170 "$CMN_HOURS"
say en_menu_m       en-us    50 160 "$EN_MENU"
say en_menu_f       en-us+f3 70 160 "$EN_MENU"
say en_ticket_f     en-us+f2 60 150 "$EN_TICKET"
say en_number_m     en-gb+m3 40 150 "$EN_NUMBER"
say en_bill_f       en-us+f4 85 170 "$EN_BILL"
say en_queue_m      en-us    30 170 "$EN_QUEUE"

sha256sum ./*.wav > SHA256SUMS
